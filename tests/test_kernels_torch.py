"""Sentence scoring through the torch path (and the Provence-style baseline) against the float64 oracle.

``score_sentences`` (hidden states + linear head) and ``reduce_sentences`` (given probabilities).
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_checks import (
    assert_identical,
    assert_matches_reference,
    assert_score_at_threshold_is_dropped,
    reduction_arguments,
)
from sentence_scoring_checks import SCORE_TOLERANCE, BatchSpec, batch_specs, reference_for, synthetic_batch
from sentence_scoring_reference import per_sample_loop, reference_reduction

from ragprune.kernels import DECISION_TOLERANCE, REDUCTIONS, reduce_sentences, score_sentences
from ragprune.kernels.dispatch import resolve_backend


@settings(max_examples=60, deadline=None)
@given(spec=batch_specs(), reduce=st.sampled_from(REDUCTIONS))
def test_torch_path_matches_float64_reference(spec: BatchSpec, reduce: str) -> None:
    batch = synthetic_batch(spec)
    result = score_sentences(reduce=reduce, backend="torch", **batch.arguments)
    assert_matches_reference(result, reference_for(batch, reduce))
    num_sentences = batch.arguments["sentence_pair"].shape[0]
    assert result.scores.dtype == torch.float32 and result.scores.shape == (num_sentences,)
    assert result.keep.dtype == torch.bool and result.keep.shape == (num_sentences,)


@settings(max_examples=60, deadline=None)
@given(spec=batch_specs(), reduce=st.sampled_from(REDUCTIONS))
def test_reducing_the_head_probabilities_is_score_sentences_bit_for_bit(spec: BatchSpec, reduce: str) -> None:
    batch = synthetic_batch(spec)
    scored = score_sentences(reduce=reduce, backend="torch", **batch.arguments)
    reduced = reduce_sentences(reduce=reduce, backend="torch", **reduction_arguments(batch.arguments))
    assert_identical(reduced, scored)


@settings(max_examples=40, deadline=None)
@given(
    spec=batch_specs(),
    reduce=st.sampled_from(REDUCTIONS),
    dtype=st.sampled_from([torch.float64, torch.float32, torch.float16, torch.bfloat16]),
)
def test_reduction_matches_float64_reference(spec: BatchSpec, reduce: str, dtype: torch.dtype) -> None:
    arguments = reduction_arguments(synthetic_batch(spec).arguments)
    generator = torch.Generator().manual_seed(spec.seed)
    probabilities = torch.rand(arguments["sentence_ids"].shape, generator=generator, dtype=torch.float64)
    arguments["token_probabilities"] = probabilities.to(dtype)
    result = reduce_sentences(reduce=reduce, backend="torch", **arguments)
    assert_matches_reference(result, reference_reduction(reduce=reduce, **arguments))


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_thousands_of_sentences_in_one_batch(reduce: str) -> None:
    spec = BatchSpec(
        num_pairs=400,
        hidden_size=24,
        seed=7,
        row_length=40,
        sentences_per_pair=(6, 12),
        sentence_tokens=(1, 4),
    )
    batch = synthetic_batch(spec)
    assert batch.arguments["sentence_pair"].shape[0] > 3000
    result = score_sentences(reduce=reduce, backend="torch", **batch.arguments)
    comparison = assert_matches_reference(result, reference_for(batch, reduce))
    assert comparison.decisions_checked > 2900


def _one_dimensional_case(logits: list[float], ids: list[int], pairs: list[int]) -> dict:
    """Hidden size 1 and weight 1, so each token's logit is exactly its hidden value."""
    return {
        "hidden": torch.tensor(logits, dtype=torch.float64).to(torch.float32)[:, None],
        "token_weight": torch.ones(1),
        "token_bias": 0.0,
        "sentence_ids": torch.tensor(ids),
        "sentence_pair": torch.tensor(pairs),
    }


def test_sentence_split_across_chunks_counts_every_token() -> None:
    # Sentence 0 has tokens in two rows (chunks) of pair 0; sentence 1 is a single token; 2 is empty.
    case = _one_dimensional_case(
        logits=[9.0, 1.0, -1.0, 9.0, 9.0, 2.0, 0.5, 9.0],
        ids=[-1, 0, 0, -1, -1, 0, 1, -1],
        pairs=[0, 0, 1],
    )
    result = score_sentences(thresholds=torch.tensor([0.6, 0.6]), **case)
    expected = (1 / (1 + np.exp(-1.0)) + 1 / (1 + np.exp(1.0)) + 1 / (1 + np.exp(-2.0))) / 3
    assert result.scores[0].item() == pytest.approx(expected, abs=1e-6)
    assert result.scores[1].item() == pytest.approx(1 / (1 + np.exp(-0.5)), abs=1e-6)
    assert result.scores[2].item() == 0.0
    assert result.keep.tolist() == [True, True, False]  # 0.656 and 0.622 > 0.6; the empty one never


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_score_exactly_at_threshold_is_dropped(reduce: str) -> None:
    assert_score_at_threshold_is_dropped(reduce, backend="torch", num_pairs=5)


def test_empty_sentences_are_never_kept() -> None:
    case = _one_dimensional_case(logits=[0.0, 3.0, 3.0], ids=[-1, 1, 1], pairs=[0, 0, 0])
    for reduce in REDUCTIONS:
        result = score_sentences(thresholds=-1.0, reduce=reduce, num_pairs=1, **case)
        assert result.keep.tolist() == [False, True, False]
        assert result.scores[[0, 2]].tolist() == [0.0, 0.0]


def test_vote_keeps_at_half_the_tokens() -> None:
    case = _one_dimensional_case(logits=[2.0, -2.0, 2.0, -2.0, -2.0], ids=[0, 0, 1, 1, 1], pairs=[0, 0])
    result = score_sentences(thresholds=0.5, reduce="vote", num_pairs=1, **case)
    assert result.scores.tolist() == pytest.approx([0.5, 1 / 3])
    assert result.keep.tolist() == [True, False]


def test_padded_and_packed_layouts_agree() -> None:
    batch = synthetic_batch(BatchSpec(num_pairs=6, hidden_size=33, seed=11, padded=True))
    arguments = batch.arguments
    hidden, ids = arguments["hidden"], arguments["sentence_ids"]
    lengths = [int((row != -1).nonzero().max()) + 2 if (row != -1).any() else 1 for row in ids]
    packed_hidden = torch.cat([hidden[row, :length] for row, length in enumerate(lengths)])
    packed_ids = torch.cat([ids[row, :length] for row, length in enumerate(lengths)])
    padded = score_sentences(**arguments)
    packed = score_sentences(**arguments | {"hidden": packed_hidden, "sentence_ids": packed_ids})
    torch.testing.assert_close(packed.scores, padded.scores, rtol=0, atol=1e-6)
    assert torch.equal(packed.keep, padded.keep)
    reduction = reduction_arguments(arguments)
    probabilities = reduction["token_probabilities"]
    packed_probabilities = torch.cat([probabilities[row, :length] for row, length in enumerate(lengths)])
    padded_reduced = reduce_sentences(**reduction)
    packed_reduced = reduce_sentences(
        **reduction | {"token_probabilities": packed_probabilities, "sentence_ids": packed_ids}
    )
    assert_identical(packed_reduced, padded_reduced)


def test_same_input_gives_identical_output() -> None:
    batch = synthetic_batch(BatchSpec(num_pairs=8, hidden_size=40, seed=5, dtype="bfloat16"))
    first = score_sentences(**batch.arguments)
    second = score_sentences(**batch.arguments)
    assert_identical(first, second)


@settings(max_examples=25, deadline=None)
@given(spec=batch_specs(), reduce=st.sampled_from(REDUCTIONS))
def test_per_sample_loop_baseline_matches_reference(spec: BatchSpec, reduce: str) -> None:
    batch = synthetic_batch(BatchSpec(**{**spec.__dict__, "padded": True, "dtype": "float32"}))
    arguments = batch.arguments
    thresholds = arguments["thresholds"]
    thresholds = (
        thresholds.numpy()
        if isinstance(thresholds, torch.Tensor)
        else np.full(spec.num_pairs, thresholds, dtype=np.float32)
    )
    bias = arguments["token_bias"]
    scores, keep = per_sample_loop(
        arguments["hidden"].numpy(),
        arguments["token_weight"].numpy(),
        float(bias),
        arguments["sentence_ids"].numpy(),
        arguments["sentence_pair"].numpy(),
        thresholds,
        reduce,
    )
    reference = reference_for(batch, reduce)
    clear = reference.margins > DECISION_TOLERANCE
    assert np.array_equal(keep[clear], reference.keep[clear])
    assert np.abs(scores - reference.scores)[clear].max(initial=0.0) < SCORE_TOLERANCE


def test_auto_backend_is_torch_without_cuda() -> None:
    assert resolve_backend("auto", torch.zeros(1, 1)) == "torch"


def test_triton_backend_on_cpu_tensors_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="backend='triton' needs CUDA tensors"):
        score_sentences(**_valid_case(), backend="triton")


def test_importing_the_package_does_not_import_triton() -> None:
    code = (
        "import sys, torch; from ragprune.kernels import reduce_sentences, score_sentences; "
        "r = score_sentences(torch.randn(4, 3), torch.randn(3), 0.0, torch.tensor([-1, 0, 0, 1]), "
        "torch.tensor([0, 0]), 0.5, num_pairs=1); "
        "r = reduce_sentences(torch.rand(4), torch.tensor([-1, 0, 0, 1]), torch.tensor([0, 0]), 0.5, "
        "num_pairs=1); "
        "assert 'triton' not in sys.modules, 'triton was imported'"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr


def _valid_case() -> dict:
    return _one_dimensional_case(logits=[0.0, 1.0, 2.0], ids=[-1, 0, 1], pairs=[0, 1]) | {
        "thresholds": torch.tensor([0.5, 0.5])
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reduce": "median"}, "unknown reduce"),
        ({"backend": "cuda"}, "unknown backend"),
        ({"hidden": torch.zeros(3, 1, dtype=torch.int64)}, "hidden must be float16"),
        ({"hidden": torch.zeros(3)}, r"hidden must be \[N, H\]"),
        ({"sentence_ids": torch.tensor([0, 1])}, r"sentence_ids must have shape \(3,\)"),
        ({"sentence_ids": torch.tensor([0.0, 1.0, 1.0])}, "sentence_ids must be int32 or int64"),
        ({"sentence_ids": torch.tensor([-1, 0, 2])}, r"sentence_ids must lie in \[-1, 2\)"),
        ({"sentence_ids": torch.tensor([-2, 0, 1])}, r"sentence_ids must lie in \[-1, 2\)"),
        ({"sentence_pair": torch.tensor([0, 2])}, r"sentence_pair must lie in \[0, 2\)"),
        ({"token_weight": torch.ones(2)}, r"token_weight must have shape \(1,\)"),
        ({"thresholds": torch.tensor([[0.5]])}, "inconsistent number of pairs"),
        ({"thresholds": 0.5}, "number of pairs is unknown"),
        ({"thresholds": torch.tensor([0.5, 0.5]), "num_pairs": 3}, "inconsistent number of pairs"),
        ({"thresholds": torch.tensor([1, 1])}, "thresholds must be a floating-point tensor"),
        ({"token_bias": torch.ones(2)}, "token_bias must be a number or a tensor 0-d"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score_sentences(**_valid_case() | change)


def test_padded_ids_must_match_hidden() -> None:
    with pytest.raises(ValueError, match=r"needs sentence_ids of shape \(2, 3\)"):
        score_sentences(
            torch.randn(2, 3, 4),
            torch.randn(4),
            0.0,
            torch.zeros(6, dtype=torch.int64),
            torch.tensor([0]),
            torch.tensor([0.5]),
        )


def _valid_reduction() -> dict:
    return {
        "token_probabilities": torch.tensor([0.1, 0.6, 0.9]),
        "sentence_ids": torch.tensor([-1, 0, 1]),
        "sentence_pair": torch.tensor([0, 1]),
        "thresholds": torch.tensor([0.5, 0.5]),
    }


def test_reduction_of_a_small_case() -> None:
    result = reduce_sentences(**_valid_reduction() | {"token_probabilities": torch.tensor([1.0, 0.6, 0.4])})
    assert torch.equal(result.scores, torch.tensor([0.6, 0.4]))  # exact: float32 p is a 32.32 number
    assert result.keep.tolist() == [True, False]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token_probabilities": torch.tensor([0.1, 1.5, 0.2])}, r"probabilities must lie in \[0, 1\]"),
        ({"token_probabilities": torch.tensor([0.1, -0.5, 0.2])}, r"probabilities must lie in \[0, 1\]"),
        ({"token_probabilities": torch.tensor([0.1, math.nan, 0.2])}, r"must lie in \[0, 1\], found .*nan"),
        ({"token_probabilities": torch.tensor([0, 1, 1])}, "token_probabilities must be a floating-point"),
        ({"token_probabilities": [0.1, 0.6, 0.9]}, "token_probabilities must be a floating-point"),
        ({"token_probabilities": torch.rand(1, 1, 3)}, r"must be \[N\] or \[R, L\]"),
        ({"token_probabilities": torch.rand(1, 3)}, "need sentence_ids of the same shape"),
        ({"sentence_ids": torch.tensor([0, 1])}, r"sentence_ids must have shape \(3,\)"),
        ({"sentence_ids": torch.tensor([-1, 0, 2])}, r"sentence_ids must lie in \[-1, 2\)"),
        ({"sentence_pair": torch.tensor([[0, 1]])}, "sentence_pair must be a 1-D"),
        ({"sentence_pair": torch.tensor([0, 2])}, r"sentence_pair must lie in \[0, 2\)"),
        ({"reduce": "sum"}, "unknown reduce"),
        ({"backend": "cuda"}, "unknown backend"),
        ({"thresholds": 0.5}, "number of pairs is unknown"),
    ],
)
def test_bad_reduction_input_is_refused_with_a_clear_message(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reduce_sentences(**_valid_reduction() | change)
