"""Helpers that check sentence scoring: synthetic ragged batches and comparison with the float64 oracle.

Shared by the CPU tests (torch path and Triton interpreter) and the GPU check in
``kernels/bench_sentence_scoring.py``, so every check builds its inputs and judges its outputs the same way.
Not shipped: tests import this module through pytest's ``pythonpath`` (pyproject.toml); the scripts
beside it import it directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sentence_scoring_reference import ReferenceScores, reference_scores

from ragprune.kernels import DECISION_TOLERANCE, SentenceScores

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "SCORE_TOLERANCE",
    "BatchSpec",
    "Comparison",
    "SyntheticBatch",
    "batch_specs",
    "compare_with_reference",
    "decisions_agree",
    "reference_for",
    "synthetic_batch",
]

_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int32": torch.int32,
    "int64": torch.int64,
}
_HIDDEN_DTYPES = ("bfloat16", "float16", "float32")

SCORE_TOLERANCE = 1e-5
"""Largest absolute score error a backend may show against the oracle (float32 arithmetic lands near 1e-7)."""


@dataclass(frozen=True)
class BatchSpec:
    """How to draw a ragged batch of (query, passage) pairs.

    Each pair is ``[CLS] query [SEP] passage [SEP]``; a passage longer than one row of ``row_length``
    tokens is cut into several rows (chunks), splitting the sentence at the cut, whose tokens then
    carry the same sentence id in two rows.  With ``sentences_per_pair=None`` every pair fills exactly
    one row (the benchmark's layout).
    """

    num_pairs: int
    hidden_size: int
    seed: int = 0
    dtype: str = "float32"
    row_length: int = 64
    query_tokens: tuple[int, int] = (1, 8)
    sentence_tokens: tuple[int, int] = (1, 12)
    sentences_per_pair: tuple[int, int] | None = (0, 6)
    empty_sentence_rate: float = 0.1
    padded: bool = False
    per_pair_thresholds: bool = True
    logit_scale: float = 2.0
    id_dtype: str = "int64"


@dataclass
class SyntheticBatch:
    """Inputs of ``score_sentences`` (as keyword arguments) and how many tokens carry a sentence id."""

    arguments: dict[str, Any]
    passage_tokens: int


def synthetic_batch(spec: BatchSpec, device: torch.device | str = "cpu") -> SyntheticBatch:
    """Draw the batch ``spec`` describes (deterministic in ``spec.seed``, random nonzero hidden)."""
    rng = np.random.default_rng(spec.seed)
    ids, sentence_pair = _token_layout(spec, rng)
    generator = torch.Generator(device=device).manual_seed(spec.seed)
    width = spec.hidden_size
    scale = 1.0 / math.sqrt(max(width, 1))
    hidden = torch.randn(*ids.shape, width, generator=generator, device=device).to(_DTYPES[spec.dtype])
    token_weight = torch.randn(width, generator=generator, device=device) * (spec.logit_scale * scale)
    thresholds: torch.Tensor | float = float(rng.uniform(0.2, 0.8))
    if spec.per_pair_thresholds:
        thresholds = torch.rand(spec.num_pairs, generator=generator, device=device) * 0.6 + 0.2
    arguments: dict[str, Any] = {
        "hidden": hidden,
        "token_weight": token_weight,
        "token_bias": _bias(float(rng.normal(0.0, 0.5)), as_tensor=spec.seed % 3 == 0, device=device),
        "sentence_ids": torch.from_numpy(ids).to(device=device, dtype=_DTYPES[spec.id_dtype]),
        "sentence_pair": torch.from_numpy(sentence_pair).to(device),
        "thresholds": thresholds,
        "num_pairs": spec.num_pairs,
    }
    return SyntheticBatch(arguments, int((ids >= 0).sum()))


def _token_layout(spec: BatchSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Token sentence ids (``[N]`` or padded ``[B, L]``) and each sentence's pair."""
    rows: list[np.ndarray] = []
    sentence_pair: list[int] = []
    for pair in range(spec.num_pairs):
        query = [-1] * (int(rng.integers(spec.query_tokens[0], spec.query_tokens[1] + 1)) + 2)
        capacity = spec.row_length - len(query) - 1  # room left by [CLS] query [SEP] ... [SEP]
        if capacity < 1:
            raise ValueError(f"row_length {spec.row_length} leaves no room for passage tokens")
        if spec.sentences_per_pair is None:
            lengths = _lengths_filling(rng, capacity, spec.sentence_tokens)
        else:
            count = int(rng.integers(spec.sentences_per_pair[0], spec.sentences_per_pair[1] + 1))
            lengths = rng.integers(spec.sentence_tokens[0], spec.sentence_tokens[1] + 1, size=count)
            lengths[rng.random(count) < spec.empty_sentence_rate] = 0
        first_id = len(sentence_pair)
        sentence_pair.extend([pair] * len(lengths))
        passage = np.repeat(np.arange(first_id, first_id + len(lengths)), lengths)
        for start in range(0, max(len(passage), 1), capacity):
            rows.append(np.concatenate([query, passage[start : start + capacity], [-1]]).astype(np.int64))
    if spec.padded:
        ids = np.full((len(rows), max(len(row) for row in rows)), -1, dtype=np.int64)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = row
    else:
        ids = np.concatenate(rows)
    return ids, np.asarray(sentence_pair, dtype=np.int64)


def _bias(value: float, *, as_tensor: bool, device: torch.device | str) -> torch.Tensor | float:
    """Biases arrive as numbers or 0-d tensors; batches use both so both code paths get exercised."""
    return torch.tensor(value, device=device) if as_tensor else value


def _lengths_filling(rng: np.random.Generator, capacity: int, bounds: tuple[int, int]) -> np.ndarray:
    """Sentence lengths drawn from ``bounds`` that add up to exactly ``capacity``."""
    lengths: list[int] = []
    while sum(lengths) < capacity:
        lengths.append(min(int(rng.integers(bounds[0], bounds[1] + 1)), capacity - sum(lengths)))
    return np.asarray(lengths, dtype=np.int64)


def batch_specs(
    max_pairs: int = 6, max_hidden: int = 70, max_row_length: int = 48
) -> SearchStrategy[BatchSpec]:
    """A hypothesis strategy of small, awkward :class:`BatchSpec` s (needs the ``hypothesis`` package).

    Covers empty and single-token sentences, sentences split across chunks, hidden sizes that are not
    powers of two, every input dtype, packed and padded layouts, scalar and per-pair thresholds.
    """
    from hypothesis import strategies as st

    return st.builds(
        BatchSpec,
        num_pairs=st.integers(1, max_pairs),
        hidden_size=st.integers(1, max_hidden),
        seed=st.integers(0, 2**31 - 1),
        dtype=st.sampled_from(_HIDDEN_DTYPES),
        id_dtype=st.sampled_from(["int32", "int64"]),
        row_length=st.integers(12, max_row_length),
        query_tokens=st.just((0, 4)),
        sentence_tokens=st.sampled_from([(1, 1), (1, 6), (3, 40)]),
        sentences_per_pair=st.sampled_from([(0, 3), (1, 8)]),
        empty_sentence_rate=st.sampled_from([0.0, 0.3]),
        padded=st.booleans(),
        per_pair_thresholds=st.booleans(),
    )


@dataclass
class Comparison:
    """How a result differs from the float64 reference."""

    max_score_error: float
    relative_score_error: float  # ||scores - ref|| / ||ref||
    unwritten_scores: int  # non-finite scores (outputs are poisoned with NaN before a checked run)
    decisions_checked: int  # sentences whose reference margin exceeds the tolerance
    decision_mismatches: int  # of those, how many disagree

    def ok(self, score_tolerance: float = SCORE_TOLERANCE) -> bool:
        """Every score written and within ``score_tolerance`` (absolute), every clear decision right."""
        return (
            self.unwritten_scores == 0
            and self.max_score_error <= score_tolerance
            and self.decision_mismatches == 0
        )


def compare_with_reference(
    result: SentenceScores, reference: ReferenceScores, tolerance: float = DECISION_TOLERANCE
) -> Comparison:
    """Compare scores, and decisions wherever the reference is more than ``tolerance`` from its threshold."""
    scores = result.scores.detach().cpu().to(torch.float64).numpy()
    keep = result.keep.detach().cpu().numpy()
    clear = reference.margins > tolerance
    finite = np.isfinite(scores)
    errors = np.abs(np.where(finite, scores, 0.0) - reference.scores)
    if reference.reduce == "vote":  # a token flipping at the threshold moves a vote share by 1/count
        errors = np.where(clear, errors, 0.0)
    reference_norm = float(np.linalg.norm(reference.scores))
    return Comparison(
        max_score_error=float(errors.max(initial=0.0)) if finite.all() else math.inf,
        relative_score_error=float(np.linalg.norm(errors)) / reference_norm if reference_norm > 0 else 0.0,
        unwritten_scores=int((~finite).sum()),
        decisions_checked=int(clear.sum()),
        decision_mismatches=int((keep[clear] != reference.keep[clear]).sum()),
    )


def decisions_agree(
    first: SentenceScores,
    second: SentenceScores,
    reference: ReferenceScores,
    tolerance: float = DECISION_TOLERANCE,
) -> bool:
    """Whether two results keep the same sentences wherever the reference is clear of the threshold."""
    clear = reference.margins > tolerance
    return bool((first.keep.cpu().numpy()[clear] == second.keep.cpu().numpy()[clear]).all())


def reference_for(batch: SyntheticBatch, reduce: str) -> ReferenceScores:
    """The float64 oracle's answer for ``batch``."""
    return reference_scores(reduce=reduce, **batch.arguments)
