"""Acceptance gates: a measured value, a target and a comparison, with pass/fail computed.

A gate whose value could not be measured in a run (the part was not run, or the feature is missing)
has ``value=None`` and ``passed`` ``None``: reported as "n/a", neither pass nor fail.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

from ragprune.types import json_float

__all__ = ["MULTI_HOP_MIN_REMOVED", "PRUNING_MIN_DROPPED", "PRUNING_MIN_RECALL", "Gate"]

PRUNING_MIN_RECALL = 0.90
"""Issue 10's pruning gate: gold-sentence recall at the default threshold (WikiQA, SciFact dev)."""
PRUNING_MIN_DROPPED = 0.50
"""Issue 10's pruning gate: share of the non-gold sentences of gold passages dropped there."""
MULTI_HOP_MIN_REMOVED = 0.60
"""Issue 10's multi-hop gate: share of the context tokens removed (HotpotQA dev, ``hops=2``), with gold
recall >= ``PRUNING_MIN_RECALL``."""

_COMPARISONS = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Gate:
    """``value comparison target``, e.g. recall ``>=`` 0.90; ``note`` says where the value comes from.

    Raises ``ValueError`` for a comparison other than ``">="`` or ``"<="``.
    """

    name: str
    value: float | None
    comparison: str
    target: float
    note: str = ""

    def __post_init__(self) -> None:
        if self.comparison not in _COMPARISONS:
            raise ValueError(
                f"comparison {self.comparison!r} is not supported; use one of {list(_COMPARISONS)}"
            )

    @property
    def passed(self) -> bool | None:
        """``None`` when the value is missing or NaN, else whether it meets the target."""
        if self.value is None or math.isnan(self.value):
            return None
        return bool(_COMPARISONS[self.comparison](self.value, self.target))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": None if self.value is None else json_float(self.value),
            "comparison": self.comparison,
            "target": self.target,
            "passed": self.passed,
            "note": self.note,
        }
