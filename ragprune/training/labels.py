"""Sentence labels from gold character spans, shared by the data builders and the trainer."""

from __future__ import annotations

from collections.abc import Sequence

GOLD_SHARE = 0.5
"""A sentence is gold when at least this share of its characters lies inside gold spans."""


def covered_share(span: tuple[int, int], gold: Sequence[Sequence[int]]) -> float:
    """Share of ``span``'s characters (``(start, end)`` offsets) inside the ``[start, end]`` gold spans."""
    start, end = span
    inside = sum(max(0, min(end, g_end) - max(start, g_start)) for g_start, g_end in gold)
    return inside / max(1, end - start)
