"""Checks shared by the sentence-scoring tests of both backends (torch path, Triton under its interpreter)."""

from __future__ import annotations

import torch

from ragprune.kernels import SentenceScores, score_sentences
from ragprune.kernels.reference import ReferenceScores
from ragprune.kernels.testing import (
    BatchSpec,
    Comparison,
    SyntheticBatch,
    compare_with_reference,
    synthetic_batch,
)


def assert_matches_reference(
    result: SentenceScores, batch: SyntheticBatch, reference: ReferenceScores
) -> Comparison:
    """Assert that ``result`` for ``batch`` agrees with the float64 oracle's ``reference``; the comparison."""
    comparison = compare_with_reference(result, reference, batch.arguments["sentence_pair"])
    assert comparison.ok(), comparison
    return comparison


def assert_score_at_threshold_is_dropped(reduce: str, backend: str, num_pairs: int) -> None:
    """With every token probability exactly 0.5, threshold 0.5 keeps nothing and 0.4999 keeps everything."""
    spec = BatchSpec(
        num_pairs=num_pairs, hidden_size=16, seed=3, empty_sentence_rate=0.0, sentences_per_pair=(1, 4)
    )
    arguments = synthetic_batch(spec).arguments | {"token_weight": torch.zeros(16), "token_bias": 0.0}
    exactly = score_sentences(reduce=reduce, backend=backend, **arguments | {"thresholds": 0.5})
    assert not exactly.keep.any()
    below = score_sentences(reduce=reduce, backend=backend, **arguments | {"thresholds": 0.4999})
    assert below.keep.all()
    assert below.kept_tokens.sum().item() == int((arguments["sentence_ids"] >= 0).sum())
