"""Reference implementations of sentence scoring, for the tests and the benchmark (not shipped).

* :func:`reference_scores` is the float64 oracle of ``ragprune.kernels.score_sentences``: exact
  mean/max/vote of float64 token probabilities, written with NumPy so that it shares no code with
  either backend; :func:`reference_reduction` is the same oracle from given probabilities (the
  semantics of ``ragprune.kernels.reduce_sentences``).
* :func:`per_sample_loop` is the baseline the kernel replaces: the Provence-style post-processing that
  walks the batch one sample at a time on the CPU, projecting each sample's tokens with NumPy and
  reducing sentence by sentence in a Python loop.

Tests import this module through pytest's ``pythonpath`` (pyproject.toml); the scripts beside it
import it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "ReferenceScores",
    "per_sample_loop",
    "reduce_per_sample",
    "reference_reduction",
    "reference_scores",
    "token_probabilities_per_sample",
]

_ORACLE_CHUNK_ROWS = 1 << 16


@dataclass
class ReferenceScores:
    """Float64 results, plus how far each decision is from flipping."""

    scores: np.ndarray  # [S] float64
    keep: np.ndarray  # [S] bool
    margins: np.ndarray  # [S] float64: |score - threshold|, for "vote" the closest token's |p - threshold|
    reduce: str


def _as_float64(value: torch.Tensor | float, length: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        array = value.detach().to("cpu", torch.float64).numpy().reshape(-1)
    else:
        array = np.asarray([value], dtype=np.float64)
    return np.broadcast_to(array, (length,)) if array.size == 1 else array


def _logits_float64(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | float) -> np.ndarray:
    hidden = hidden.reshape(-1, hidden.shape[-1])
    weight64 = weight.detach().to("cpu", torch.float64).numpy()
    logits = np.empty(hidden.shape[0], dtype=np.float64)
    for start in range(0, hidden.shape[0], _ORACLE_CHUNK_ROWS):
        chunk = hidden[start : start + _ORACLE_CHUNK_ROWS].detach().to("cpu", torch.float64).numpy()
        logits[start : start + chunk.shape[0]] = chunk @ weight64
    return logits + _as_float64(bias, 1)[0]


def reference_scores(
    hidden: torch.Tensor,
    token_weight: torch.Tensor,
    token_bias: torch.Tensor | float,
    sentence_ids: torch.Tensor,
    sentence_pair: torch.Tensor,
    thresholds: torch.Tensor | float,
    reduce: str = "mean",
    *,
    num_pairs: int,
) -> ReferenceScores:
    """The semantics of ``score_sentences`` in float64 (no fixed point), from the same inputs."""
    probabilities = np.exp(-np.logaddexp(0.0, -_logits_float64(hidden, token_weight, token_bias)))
    return _reduce_float64(probabilities, sentence_ids, sentence_pair, thresholds, reduce, num_pairs)


def reference_reduction(
    token_probabilities: torch.Tensor,
    sentence_ids: torch.Tensor,
    sentence_pair: torch.Tensor,
    thresholds: torch.Tensor | float,
    reduce: str = "mean",
    *,
    num_pairs: int,
) -> ReferenceScores:
    """The semantics of ``reduce_sentences`` in float64: the probabilities rounded to float32, as the
    backends take them, then reduced exactly."""
    probabilities = token_probabilities.detach().cpu().to(torch.float32).to(torch.float64).numpy()
    probabilities = probabilities.reshape(-1)
    return _reduce_float64(probabilities, sentence_ids, sentence_pair, thresholds, reduce, num_pairs)


def _reduce_float64(
    probabilities: np.ndarray,
    sentence_ids: torch.Tensor,
    sentence_pair: torch.Tensor,
    thresholds: torch.Tensor | float,
    reduce: str,
    num_pairs: int,
) -> ReferenceScores:
    ids = sentence_ids.detach().cpu().numpy().reshape(-1).astype(np.int64)
    pair = sentence_pair.detach().cpu().numpy().astype(np.int64)
    num_sentences = pair.shape[0]
    sentence_threshold = _as_float64(thresholds, num_pairs)[pair]
    active = ids >= 0
    sentence, probabilities = ids[active], probabilities[active]
    counts = np.bincount(sentence, minlength=num_sentences)
    denominators = np.maximum(counts, 1)
    if reduce == "mean":
        scores = np.bincount(sentence, weights=probabilities, minlength=num_sentences) / denominators
    elif reduce == "max":
        scores = np.zeros(num_sentences)
        np.maximum.at(scores, sentence, probabilities)
    elif reduce == "vote":
        votes = np.bincount(
            sentence, weights=probabilities > sentence_threshold[sentence], minlength=num_sentences
        ).astype(np.int64)
        scores = votes / denominators
    else:
        raise ValueError(f"unknown reduce {reduce!r}")
    if reduce == "vote":
        keep = (counts > 0) & (2 * votes >= counts)
        margins = np.full(num_sentences, np.inf)
        np.minimum.at(margins, sentence, np.abs(probabilities - sentence_threshold[sentence]))
    else:
        keep = (counts > 0) & (scores > sentence_threshold)
        margins = np.where(counts > 0, np.abs(scores - sentence_threshold), np.inf)
    return ReferenceScores(scores, keep, margins, reduce)


def token_probabilities_per_sample(hidden: np.ndarray, weight: np.ndarray, bias: float) -> np.ndarray:
    """Provence-style stage 1: ``[B, L]`` float32 keep probabilities, one sample at a time."""
    probabilities = np.empty(hidden.shape[:2], dtype=np.float32)
    for row, states in enumerate(hidden):
        probabilities[row] = 1.0 / (1.0 + np.exp(-(states @ weight + np.float32(bias))))
    return probabilities


def reduce_per_sample(
    probabilities: np.ndarray,
    sentence_ids: np.ndarray,
    sentence_pair: np.ndarray,
    thresholds: np.ndarray,
    reduce: str = "mean",
) -> tuple[np.ndarray, np.ndarray]:
    """Provence-style stage 2: walk each sample's sentence runs in Python; (scores, keep)."""
    num_sentences = sentence_pair.shape[0]
    totals = np.zeros(num_sentences)
    counts = np.zeros(num_sentences, dtype=np.int64)
    for row_probabilities, row_ids in zip(probabilities, sentence_ids, strict=True):
        bounds = [0, *(np.flatnonzero(np.diff(row_ids)) + 1).tolist(), row_ids.shape[0]]
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            sentence = int(row_ids[start])
            if sentence < 0:
                continue
            run = row_probabilities[start:end]
            if reduce == "mean":
                totals[sentence] += float(run.sum())
            elif reduce == "max":
                totals[sentence] = max(totals[sentence], float(run.max()))
            else:
                totals[sentence] += int((run > thresholds[sentence_pair[sentence]]).sum())
            counts[sentence] += end - start
    scores = np.zeros(num_sentences, dtype=np.float32)
    keep = np.zeros(num_sentences, dtype=bool)
    for sentence in range(num_sentences):
        if counts[sentence] == 0:
            continue
        score = totals[sentence] if reduce == "max" else totals[sentence] / counts[sentence]
        scores[sentence] = score
        if reduce == "vote":
            keep[sentence] = 2 * totals[sentence] >= counts[sentence]
        else:
            keep[sentence] = score > thresholds[sentence_pair[sentence]]
    return scores, keep


def per_sample_loop(
    hidden: np.ndarray,
    weight: np.ndarray,
    bias: float,
    sentence_ids: np.ndarray,
    sentence_pair: np.ndarray,
    thresholds: np.ndarray,
    reduce: str = "mean",
) -> tuple[np.ndarray, np.ndarray]:
    """The whole Provence-style baseline on padded ``[B, L, H]`` float32 arrays; (scores, keep)."""
    probabilities = token_probabilities_per_sample(hidden, weight, bias)
    return reduce_per_sample(probabilities, sentence_ids, sentence_pair, thresholds, reduce)
