"""Comparing pruners at equal compression: a recall-vs-compression curve read at a given compression.

Two pruners that remove different amounts of text cannot be compared by recall alone (keeping more
always recalls more). A baseline with a score per sentence (e.g. query–sentence embedding cosine)
traces a curve as its threshold moves; :func:`recall_at_compression` reads that curve at the other
pruner's compression by linear interpolation between the two measured points around it, and
:func:`recall_gap` gives the difference "recall − baseline recall at the same compression".
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["recall_at_compression", "recall_gap"]


def recall_at_compression(curve: Iterable[tuple[float, float]], compression: float) -> float:
    """The recall of a ``(compression, recall)`` curve at ``compression``, linearly interpolated.

    ``curve`` holds measured points in any order (compression and recall as shares in [0, 1]);
    points with a NaN coordinate are ignored, and where several points share a compression the best
    recall counts (the baseline at its best). Raises ``ValueError`` when ``compression`` lies outside
    the measured range (there is no extrapolation: measure the curve's ends, e.g. keep-everything at
    compression 0 and keep-nothing at 1) or when no point is usable.
    """
    best: dict[float, float] = {}
    for x, y in curve:
        if not (math.isnan(x) or math.isnan(y)):
            best[x] = max(y, best.get(x, -math.inf))
    if not best:
        raise ValueError("the curve has no point with a defined compression and recall; measure some first")
    xs = sorted(best)
    if math.isnan(compression) or not xs[0] <= compression <= xs[-1]:
        raise ValueError(
            f"compression {compression} is outside the curve's measured range [{xs[0]}, {xs[-1]}]; "
            "add the curve's end points (keep everything, keep nothing) to measure it there"
        )
    return float(np.interp(compression, xs, [best[x] for x in xs]))


def recall_gap(recall: float, compression: float, baseline_curve: Iterable[tuple[float, float]]) -> float:
    """``recall`` minus the baseline curve's recall at the same ``compression`` (see above)."""
    return recall - recall_at_compression(baseline_curve, compression)
