"""Sentence scoring through the torch path (and the Provence-style baseline) against the float64 oracle."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_checks import assert_matches_reference, assert_score_at_threshold_is_dropped

from ragprune.kernels import DECISION_TOLERANCE, REDUCTIONS, score_sentences
from ragprune.kernels.reference import per_sample_loop
from ragprune.kernels.sentence_scoring import resolve_backend
from ragprune.kernels.testing import SCORE_TOLERANCE, BatchSpec, batch_specs, reference_for, synthetic_batch


@settings(max_examples=60, deadline=None)
@given(spec=batch_specs(), reduce=st.sampled_from(REDUCTIONS))
def test_torch_path_matches_float64_reference(spec: BatchSpec, reduce: str) -> None:
    batch = synthetic_batch(spec)
    result = score_sentences(reduce=reduce, backend="torch", **batch.arguments)
    assert_matches_reference(result, batch, reference_for(batch, reduce))
    assert result.scores.dtype == torch.float32 and result.keep.dtype == torch.bool
    assert result.kept_tokens.dtype == torch.int64 and result.kept_tokens.shape == (spec.num_pairs,)
    assert (result.rank_logits is not None) == spec.with_rank


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
    comparison = assert_matches_reference(result, batch, reference_for(batch, reduce))
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
    assert result.kept_tokens.tolist() == [4, 0]


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
    row_starts = torch.tensor(np.cumsum([0, *lengths[:-1]]))
    rank_rows = row_starts[torch.div(arguments["rank_rows"], ids.shape[1], rounding_mode="floor")]
    padded = score_sentences(**arguments)
    packed = score_sentences(
        **arguments | {"hidden": packed_hidden, "sentence_ids": packed_ids, "rank_rows": rank_rows}
    )
    torch.testing.assert_close(packed.scores, padded.scores, rtol=0, atol=1e-6)
    assert torch.equal(packed.keep, padded.keep)
    torch.testing.assert_close(packed.rank_logits, padded.rank_logits, rtol=1e-6, atol=1e-6)


def test_same_input_gives_identical_output() -> None:
    batch = synthetic_batch(BatchSpec(num_pairs=8, hidden_size=40, seed=5, dtype="bfloat16"))
    first = score_sentences(**batch.arguments)
    second = score_sentences(**batch.arguments)
    assert torch.equal(first.scores, second.scores) and torch.equal(first.keep, second.keep)
    assert torch.equal(first.kept_tokens, second.kept_tokens)


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
    scores, keep, kept = per_sample_loop(
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
    if clear.all():
        assert np.array_equal(kept, reference.kept_tokens)


def test_auto_backend_is_torch_without_cuda() -> None:
    assert resolve_backend("auto", torch.zeros(1, 1)) == "torch"


def test_triton_backend_on_cpu_tensors_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="backend='triton' needs CUDA tensors"):
        score_sentences(**_valid_case(), backend="triton")


def test_importing_the_package_does_not_import_triton() -> None:
    code = (
        "import sys, torch; from ragprune.kernels import score_sentences; "
        "r = score_sentences(torch.randn(4, 3), torch.randn(3), 0.0, torch.tensor([-1, 0, 0, 1]), "
        "torch.tensor([0, 0]), 0.5, num_pairs=1); "
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
        (
            {"thresholds": 0.5, "num_pairs": 2, "rank_rows": torch.tensor([0, 1, 2])},
            "inconsistent number of pairs",
        ),
        ({"rank_rows": torch.tensor([0, 1])}, "rank_rows and rank_weight go together"),
        (
            {"rank_rows": torch.tensor([0, 3]), "rank_weight": torch.ones(1)},
            r"rank_rows must lie in \[0, 3\)",
        ),
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
