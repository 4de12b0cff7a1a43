"""Reading a baseline's recall-vs-compression curve at another pruner's compression (hand-computed values)."""

from __future__ import annotations

import math

import pytest

from ragprune.evaluation.tradeoff import recall_at_compression, recall_gap

CURVE = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.8)]  # any order


@pytest.mark.parametrize(
    ("compression", "recall"),
    [(0.0, 1.0), (0.25, 0.9), (0.5, 0.8), (0.75, 0.4), (1.0, 0.0), (0.1, 0.96)],
)
def test_linear_interpolation_between_measured_points(compression: float, recall: float) -> None:
    assert recall_at_compression(CURVE, compression) == pytest.approx(recall)


def test_gap_is_recall_minus_the_curve_at_the_same_compression() -> None:
    assert recall_gap(0.95, 0.25, CURVE) == pytest.approx(0.05)  # 0.95 - 0.9
    assert recall_gap(0.3, 0.75, CURVE) == pytest.approx(-0.1)  # 0.3 - 0.4


def test_the_best_recall_counts_at_a_repeated_compression_and_nan_points_are_ignored() -> None:
    curve = [(0.0, 1.0), (0.5, 0.6), (0.5, 0.7), (1.0, 0.0), (0.3, math.nan), (math.nan, 0.2)]
    assert recall_at_compression(curve, 0.5) == pytest.approx(0.7)
    assert recall_at_compression(curve, 0.25) == pytest.approx(0.85)  # halfway between 1.0 and 0.7


def test_no_extrapolation_and_no_empty_curve() -> None:
    with pytest.raises(
        ValueError, match=r"compression 0.9 is outside the curve's measured range \[0.0, 0.5\]"
    ):
        recall_at_compression([(0.0, 1.0), (0.5, 0.8)], 0.9)
    with pytest.raises(ValueError, match="outside"):
        recall_at_compression(CURVE, math.nan)
    with pytest.raises(ValueError, match="no point with a defined compression and recall"):
        recall_at_compression([(math.nan, 1.0)], 0.5)
