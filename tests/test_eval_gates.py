"""Acceptance gates: pass/fail computed from the measured value, n/a when nothing was measured."""

from __future__ import annotations

import math

import pytest

from ragprune.evaluation.gates import Gate


@pytest.mark.parametrize(
    ("value", "comparison", "target", "passed"),
    [
        (0.9, ">=", 0.9, True),
        (0.89, ">=", 0.9, False),
        (0.03, "<=", 0.03, True),
        (0.031, "<=", 0.03, False),
        (None, ">=", 0.9, None),
        (math.nan, "<=", 0.03, None),
    ],
)
def test_pass_fail_is_computed(
    value: float | None, comparison: str, target: float, passed: bool | None
) -> None:
    assert Gate("g", value, comparison, target).passed is passed


def test_to_dict_carries_value_target_and_verdict() -> None:
    assert Gate("recall", 0.95, ">=", 0.9, "default threshold").to_dict() == {
        "name": "recall",
        "value": 0.95,
        "comparison": ">=",
        "target": 0.9,
        "passed": True,
        "note": "default threshold",
    }
    assert Gate("recall", math.nan, ">=", 0.9).to_dict()["value"] is None


def test_unknown_comparison_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"comparison '>' is not supported; use one of \['>=', '<='\]"):
        Gate("g", 1.0, ">", 0.5)
