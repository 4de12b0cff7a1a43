"""Torch backend of sentence scoring: runs on any device, a handful of vectorised ops for the whole batch.

Implements :mod:`ragprune.kernels.semantics`.  :func:`token_probabilities` is the linear token head;
:func:`reduce_probabilities` is the per-sentence reduction that both entry points share, so
``score_sentences`` is exactly ``reduce_sentences`` applied to :func:`token_probabilities`.
"""

from __future__ import annotations

import torch

from ragprune.kernels.semantics import FIXED_POINT_SCALE, LinearTokenHead, ScoringInputs, SentenceScores

__all__ = ["reduce_probabilities", "run", "to_fixed_point", "token_probabilities"]

_PROJECTION_CHUNK_ELEMENTS = 1 << 26  # upcast at most this many hidden values at a time


def run(inputs: ScoringInputs) -> SentenceScores:
    """Scores and keep flags for validated inputs of either entry point."""
    if inputs.head is not None:
        probabilities = token_probabilities(inputs.head)
    else:
        assert inputs.probabilities is not None  # ScoringInputs: exactly one of head / probabilities
        probabilities = inputs.probabilities.to(torch.float32)
    return reduce_probabilities(probabilities, inputs)


def token_probabilities(head: LinearTokenHead) -> torch.Tensor:
    """``[N]`` float32 ``sigmoid(hidden @ weight + bias)``, upcasting the hidden states chunk by chunk."""
    hidden = head.hidden
    weight = head.weight.to(torch.float32)
    logits = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    rows_per_chunk = max(1, _PROJECTION_CHUNK_ELEMENTS // max(1, hidden.shape[1]))
    for start in range(0, hidden.shape[0], rows_per_chunk):
        chunk = hidden[start : start + rows_per_chunk].to(torch.float32)
        torch.mv(chunk, weight, out=logits[start : start + rows_per_chunk])
    return torch.sigmoid(logits + head.bias)


def reduce_probabilities(probabilities: torch.Tensor, inputs: ScoringInputs) -> SentenceScores:
    """Reduce ``[N]`` float32 token probabilities per sentence and threshold them (the shared reduction)."""
    active = inputs.sentence_ids >= 0
    sentence = inputs.sentence_ids[active].long()
    probabilities = probabilities[active]
    num_sentences = inputs.num_sentences
    counts = torch.bincount(sentence, minlength=num_sentences)
    values = torch.zeros(num_sentences, dtype=torch.int64, device=inputs.device)
    if inputs.reduce == "mean":
        values.index_add_(0, sentence, to_fixed_point(probabilities))
    elif inputs.reduce == "max":
        values.scatter_reduce_(0, sentence, to_fixed_point(probabilities), reduce="amax")
    else:
        token_threshold = _threshold_per_sentence(inputs, inputs.sentence_pair[sentence])
        values.index_add_(0, sentence, (probabilities > token_threshold).to(torch.int64))
    scores, keep = _finalize(
        values, counts, _threshold_per_sentence(inputs, inputs.sentence_pair), inputs.reduce
    )
    return SentenceScores(scores=scores, keep=keep)


def to_fixed_point(probabilities: torch.Tensor) -> torch.Tensor:
    """``floor(p * 2**32)`` as int64 (probabilities are non-negative, so truncation is the floor)."""
    return (probabilities * FIXED_POINT_SCALE).to(torch.int64)


def _threshold_per_sentence(inputs: ScoringInputs, pair: torch.Tensor) -> torch.Tensor | float:
    """The threshold of each pair index in ``pair`` (broadcastable when all pairs share one)."""
    if isinstance(inputs.thresholds, float) or inputs.thresholds.numel() == 1:
        return inputs.thresholds
    return inputs.thresholds[pair.long()]


def _finalize(
    values: torch.Tensor, counts: torch.Tensor, thresholds: torch.Tensor | float, reduce: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and keep flags from per-sentence integer accumulators (same float32 steps as the kernel)."""
    denominators = counts.clamp(min=1).to(torch.float32)
    nonempty = counts > 0
    if reduce == "vote":
        return values.to(torch.float32) / denominators, nonempty & (2 * values >= counts)
    scores = values.to(torch.float32) * (1.0 / FIXED_POINT_SCALE)
    if reduce == "mean":
        scores = scores / denominators
    return scores, nonempty & (scores > thresholds)
