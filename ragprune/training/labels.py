"""Sentence labels of a (query, passage) pair: gold from character spans, silver from teacher cosines.

Shared by the data builders (``training/build_data.py``, ``build_spliced.py``) and the trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ragprune.pipeline.encoding import TokenizedPassage

GOLD_SHARE = 0.5
"""A sentence is gold when at least this share of its characters lies inside gold spans."""

IGNORE = -100
"""Label of a sentence that carries no label in a batch (padding, or no token in the encoded row)."""


def covered_share(span: tuple[int, int], gold: Sequence[Sequence[int]]) -> float:
    """Share of ``span``'s characters (``(start, end)`` offsets) inside the ``[start, end]`` gold spans."""
    start, end = span
    inside = sum(max(0, min(end, g_end) - max(start, g_start)) for g_start, g_end in gold)
    return inside / max(1, end - start)


def sentence_labels(
    passage: TokenizedPassage,
    gold_spans: Sequence[Sequence[int]] | None,
    cosines: Sequence[float] | None,
    relevant: bool,
    margin: float,
) -> np.ndarray:
    """1 = keep, 0 = drop, per sentence of ``passage`` (as the pipeline splits it); float array ``[S]``.

    * ``gold_spans`` given (the source names gold sentences): a sentence is kept when at least
      :data:`GOLD_SHARE` of its characters is gold.
    * otherwise, silver: a ``relevant`` passage keeps the sentences whose teacher cosine to the query
      (``cosines``, one per sentence) is within ``margin`` of its best sentence's.
    * a passage that is not relevant, or whose cosines are missing or do not match its sentences, keeps
      nothing.
    """
    n = len(passage.sentences)
    if gold_spans is not None:
        return np.asarray(
            [covered_share((s.start, s.end), gold_spans) >= GOLD_SHARE for s in passage.sentences], float
        )
    if not relevant or not cosines or len(cosines) != n:
        return np.zeros(n)
    best = max(cosines)
    return np.asarray([c >= best - margin for c in cosines], float)
