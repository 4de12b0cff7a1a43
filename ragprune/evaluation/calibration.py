"""Reliability of a calibrated relevance probability: binned predicted vs observed rates, and ECE.

A probability is calibrated when, among passages given p ~ 0.7, about 70% are relevant. The reliability
diagram bins the predictions and compares each bin's mean prediction with its observed rate; the
expected calibration error (ECE) is the count-weighted mean absolute gap over the bins (Naeini et al.,
"Obtaining Well Calibrated Probabilities Using Bayesian Binning", AAAI 2015, Sec. 2; Guo et al.,
"On Calibration of Modern Neural Networks", ICML 2017, Sec. 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ReliabilityBin:
    """Predictions in ``[low, high)`` (the last bin includes 1.0): how many, their mean, the observed rate."""

    low: float
    high: float
    count: int
    mean_predicted: float
    observed: float


def reliability(
    probabilities: Sequence[float], labels: Sequence[bool], bins: int = 10
) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1]; empty bins are left out.

    Raises ``ValueError`` when the two sequences differ in length, a probability lies outside [0, 1],
    or ``bins`` < 1.
    """
    if len(probabilities) != len(labels):
        raise ValueError(f"{len(probabilities)} probabilities but {len(labels)} labels; pass one label each")
    if bins < 1:
        raise ValueError(f"bins={bins}; use at least one bin")
    members: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for p, label in zip(probabilities, labels):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability {p} is outside [0, 1]")
        members[min(int(p * bins), bins - 1)].append((p, bool(label)))
    return [
        ReliabilityBin(
            low=i / bins,
            high=(i + 1) / bins,
            count=len(group),
            mean_predicted=sum(p for p, _ in group) / len(group),
            observed=sum(label for _, label in group) / len(group),
        )
        for i, group in enumerate(members)
        if group
    ]


def expected_calibration_error(table: Sequence[ReliabilityBin]) -> float:
    """Count-weighted mean of ``|mean_predicted - observed|`` over the bins (0 for no predictions)."""
    total = sum(b.count for b in table)
    return sum(b.count * abs(b.mean_predicted - b.observed) for b in table) / total if total else 0.0
