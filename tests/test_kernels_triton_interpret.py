"""The Triton kernels on the CPU under ``TRITON_INTERPRET=1``, against the float64 oracle and the torch path.

``TRITON_INTERPRET`` is read when ``@triton.jit`` decorates a kernel, i.e. when the kernel module is first
imported in a process; pytest-xdist workers import every test module of the run, so setting the
variable here would leak into other tests.  Instead, without the variable this module holds a single
test that re-runs this file in a child pytest with the variable set, and the real tests exist only
in that child.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("TRITON_INTERPRET") != "1":

    @pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
    def test_triton_kernels_under_the_interpreter() -> None:
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-o",
            "addopts=",
            str(Path(__file__).resolve()),
        ]
        completed = subprocess.run(
            command,
            cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, "TRITON_INTERPRET": "1"},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert completed.returncode == 0, completed.stdout[-8000:] + completed.stderr[-4000:]
        assert " passed" in completed.stdout and " skipped" not in completed.stdout, completed.stdout[-2000:]

else:
    import math

    import torch
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from kernel_checks import (
        assert_identical,
        assert_matches_reference,
        assert_score_at_threshold_is_dropped,
        reduction_arguments,
    )
    from sentence_scoring_checks import (
        BatchSpec,
        batch_specs,
        decisions_agree,
        reference_for,
        synthetic_batch,
    )
    from sentence_scoring_reference import reference_reduction

    from ragprune.kernels import (
        DECISION_TOLERANCE,
        REDUCTIONS,
        SentenceScores,
        reduce_sentences,
        score_sentences,
        triton_backend,
    )
    from ragprune.kernels.semantics import prepare_reduction_inputs, prepare_scoring_inputs
    from ragprune.kernels.triton_backend import KernelConfig

    CONFIGS = [
        KernelConfig(),
        KernelConfig(block_tokens=16, block_hidden=16, block_sentences=32),
        KernelConfig(block_tokens=16, block_hidden=32, segment_scan=False),
    ]

    def _run_triton(arguments: dict, reduce: str, config: KernelConfig) -> SentenceScores:
        return triton_backend.run(prepare_scoring_inputs(reduce=reduce, **arguments), config)

    def _reduce_triton(arguments: dict, reduce: str, config: KernelConfig) -> SentenceScores:
        return triton_backend.run(prepare_reduction_inputs(reduce=reduce, **arguments), config)

    @settings(max_examples=30, deadline=None)
    @given(
        spec=batch_specs(max_pairs=4, max_hidden=40, max_row_length=40),
        reduce=st.sampled_from(REDUCTIONS),
        config=st.sampled_from(CONFIGS),
    )
    def test_kernel_matches_reference_and_torch_path(
        spec: BatchSpec, reduce: str, config: KernelConfig
    ) -> None:
        batch = synthetic_batch(spec)
        result = _run_triton(batch.arguments, reduce, config)
        reference = reference_for(batch, reduce)
        assert_matches_reference(result, reference)
        torch_result = score_sentences(reduce=reduce, backend="torch", **batch.arguments)
        assert decisions_agree(result, torch_result, reference)

    @settings(max_examples=30, deadline=None)
    @given(
        spec=batch_specs(max_pairs=4, max_hidden=8, max_row_length=40),
        reduce=st.sampled_from(REDUCTIONS),
        config=st.sampled_from(CONFIGS),
    )
    def test_reduction_kernel_is_the_torch_path_bit_for_bit(
        spec: BatchSpec, reduce: str, config: KernelConfig
    ) -> None:
        # Given the torch path's probabilities, the kernel's integer sums, and so its scores, are the
        # torch path's: the reduction entry point agrees with score_sentences(backend="torch") exactly.
        arguments = reduction_arguments(synthetic_batch(spec).arguments)
        result = _reduce_triton(arguments, reduce, config)
        assert_identical(result, reduce_sentences(reduce=reduce, backend="torch", **arguments))
        assert_matches_reference(result, reference_reduction(reduce=reduce, **arguments))

    @pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
    def test_reduction_kernel_reads_every_probability_dtype(dtype: torch.dtype) -> None:
        batch = synthetic_batch(BatchSpec(num_pairs=4, hidden_size=4, seed=13, padded=True))
        arguments = reduction_arguments(batch.arguments)
        arguments["token_probabilities"] = arguments["token_probabilities"].to(dtype)
        for reduce in REDUCTIONS:
            kernel = reduce_sentences(reduce=reduce, backend="triton", **arguments)
            assert_identical(kernel, reduce_sentences(reduce=reduce, backend="torch", **arguments))

    @pytest.mark.parametrize(
        ("reduce", "config"),
        [
            ("mean", KernelConfig(block_tokens=32, block_hidden=32)),
            ("vote", KernelConfig(segment_scan=False)),
        ],
    )
    def test_thousands_of_sentences_in_one_batch(reduce: str, config: KernelConfig) -> None:
        spec = BatchSpec(
            num_pairs=220,
            hidden_size=20,
            seed=4,
            row_length=48,
            sentences_per_pair=(8, 14),
            sentence_tokens=(1, 3),
            query_tokens=(0, 2),
        )
        batch = synthetic_batch(spec)
        assert batch.arguments["sentence_pair"].shape[0] > 2000
        result = _run_triton(batch.arguments, reduce, config)
        assert_matches_reference(result, reference_for(batch, reduce))

    @pytest.mark.parametrize("reduce", REDUCTIONS)
    def test_long_sentence_split_over_many_blocks_and_chunks(reduce: str) -> None:
        # 150-token sentences in 40-token rows: each spans several chunks and many 16-token blocks.
        spec = BatchSpec(
            num_pairs=3,
            hidden_size=24,
            seed=8,
            row_length=40,
            sentences_per_pair=(1, 3),
            sentence_tokens=(100, 150),
            empty_sentence_rate=0.0,
        )
        batch = synthetic_batch(spec)
        config = KernelConfig(block_tokens=16, block_hidden=16)
        result = _run_triton(batch.arguments, reduce, config)
        assert_matches_reference(result, reference_for(batch, reduce))
        arguments = reduction_arguments(batch.arguments)
        reduced = _reduce_triton(arguments, reduce, config)
        assert_identical(reduced, reduce_sentences(reduce=reduce, backend="torch", **arguments))

    @pytest.mark.parametrize("reduce", REDUCTIONS)
    def test_score_exactly_at_threshold_is_dropped(reduce: str) -> None:
        assert_score_at_threshold_is_dropped(reduce, backend="triton", num_pairs=4)

    def test_every_output_element_is_written() -> None:
        batch = synthetic_batch(BatchSpec(num_pairs=5, hidden_size=37, seed=9))
        for inputs in (
            prepare_scoring_inputs(reduce="mean", **batch.arguments),
            prepare_reduction_inputs(reduce="vote", **reduction_arguments(batch.arguments)),
        ):
            results = []
            for poison in (True, False):
                out = SentenceScores(
                    scores=torch.full((inputs.num_sentences,), math.nan),
                    keep=torch.full((inputs.num_sentences,), poison),
                )
                results.append(triton_backend.run(inputs, KernelConfig(block_sentences=16), out=out))
            assert torch.isfinite(results[0].scores).all()
            assert_identical(results[0], results[1])

    def test_repeated_runs_are_bitwise_identical() -> None:
        batch = synthetic_batch(BatchSpec(num_pairs=4, hidden_size=30, seed=12, dtype="bfloat16"))
        first = score_sentences(backend="triton", **batch.arguments)
        second = score_sentences(backend="triton", **batch.arguments)
        assert_identical(first, second)

    def test_no_sentences_and_sentences_without_tokens() -> None:
        no_sentences = score_sentences(
            torch.randn(6, 10),
            torch.randn(10),
            0.0,
            torch.full((6,), -1),
            torch.zeros(0, dtype=torch.int64),
            torch.tensor([0.5, 0.5]),
            backend="triton",
        )
        assert no_sentences.scores.shape == (0,) and no_sentences.keep.shape == (0,)
        no_tokens = score_sentences(
            torch.randn(0, 10),
            torch.randn(10),
            0.0,
            torch.zeros(0, dtype=torch.int64),
            torch.tensor([0, 0, 0]),
            0.5,
            num_pairs=1,
            backend="triton",
        )
        assert no_tokens.scores.tolist() == [0.0, 0.0, 0.0] and not no_tokens.keep.any()
        reduced = reduce_sentences(
            torch.zeros(0),
            torch.zeros(0, dtype=torch.int64),
            torch.tensor([0, 0]),
            0.5,
            num_pairs=1,
            backend="triton",
        )
        assert reduced.scores.tolist() == [0.0, 0.0] and not reduced.keep.any()

    def test_pipeline_takes_the_same_decisions_with_either_backend(tiny_model_dir: Path) -> None:
        from sample_texts import QUERY, TEXTS

        from ragprune.pipeline import RerankPruner

        with_kernel = RerankPruner.load(tiny_model_dir, device="cpu", scoring_backend="triton")
        with_torch = RerankPruner.load(tiny_model_dir, device="cpu", scoring_backend="torch")
        for threshold in (0.3, 0.5, 0.7):
            kernel_result = with_kernel.process(QUERY, TEXTS, threshold=threshold, reorder=False)
            torch_result = with_torch.process(QUERY, TEXTS, threshold=threshold, reorder=False)
            for a, b in zip(kernel_result, torch_result, strict=True):
                assert a.logit == pytest.approx(b.logit, abs=1e-5)
                for x, y in zip(a.sentences, b.sentences, strict=True):
                    assert x.score == pytest.approx(y.score, abs=1e-5)
                    if abs(y.score - threshold) > DECISION_TOLERANCE:
                        assert x.kept == y.kept
