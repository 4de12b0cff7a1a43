"""Checks shared by the sentence-scoring tests of both backends (torch path, Triton under its interpreter).

``sentence_scoring_checks`` and ``sentence_scoring_reference`` live in the top-level ``kernels/`` folder
(on pytest's ``pythonpath``), shared with the GPU benchmark there.
"""

from __future__ import annotations

from typing import Any

import torch
from sentence_scoring_checks import BatchSpec, Comparison, compare_with_reference, synthetic_batch
from sentence_scoring_reference import ReferenceScores

from ragprune.kernels import SentenceScores, reduce_sentences, score_sentences
from ragprune.kernels.semantics import prepare_scoring_inputs
from ragprune.kernels.torch_backend import token_probabilities


def assert_matches_reference(result: SentenceScores, reference: ReferenceScores) -> Comparison:
    """Assert that ``result`` agrees with the float64 oracle's ``reference``; return the comparison."""
    comparison = compare_with_reference(result, reference)
    assert comparison.ok(), comparison
    return comparison


def assert_identical(first: SentenceScores, second: SentenceScores) -> None:
    """Bit-for-bit equal scores (same dtype) and decisions."""
    assert first.scores.dtype == second.scores.dtype == torch.float32
    assert torch.equal(first.scores, second.scores) and torch.equal(first.keep, second.keep)


def reduction_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """``reduce_sentences`` arguments for a synthetic batch: the torch path's ``sigmoid(hidden @ w + b)``,
    shaped like the batch's sentence ids (``[N]`` or padded ``[B, L]``)."""
    head = prepare_scoring_inputs(**arguments).head
    return {
        "token_probabilities": token_probabilities(head).reshape(arguments["sentence_ids"].shape),
        "sentence_ids": arguments["sentence_ids"],
        "sentence_pair": arguments["sentence_pair"],
        "thresholds": arguments["thresholds"],
        "num_pairs": arguments["num_pairs"],
    }


def assert_score_at_threshold_is_dropped(reduce: str, backend: str, num_pairs: int) -> None:
    """With every token probability exactly 0.5, threshold 0.5 keeps nothing and 0.4999 keeps everything
    (through both entry points)."""
    spec = BatchSpec(
        num_pairs=num_pairs, hidden_size=16, seed=3, empty_sentence_rate=0.0, sentences_per_pair=(1, 4)
    )
    arguments = synthetic_batch(spec).arguments | {"token_weight": torch.zeros(16), "token_bias": 0.0}
    ids = arguments["sentence_ids"]
    exactly = score_sentences(reduce=reduce, backend=backend, **arguments | {"thresholds": 0.5})
    assert not exactly.keep.any()
    below = score_sentences(reduce=reduce, backend=backend, **arguments | {"thresholds": 0.4999})
    assert below.keep.all()
    halves = reduction_arguments(arguments) | {"token_probabilities": torch.full(ids.shape, 0.5)}
    for threshold, kept in ((0.5, False), (0.4999, True)):
        result = reduce_sentences(reduce=reduce, backend=backend, **halves | {"thresholds": threshold})
        assert torch.equal(result.keep, torch.full_like(result.keep, kept))
