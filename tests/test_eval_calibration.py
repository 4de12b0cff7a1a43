"""Reliability bins and ECE on hand-computed inputs."""

from __future__ import annotations

import pytest

from ragprune.evaluation.calibration import expected_calibration_error, reliability


def test_bins_hold_their_predictions_and_observed_rates():
    table = reliability([0.05, 0.15, 0.12, 0.95, 1.0], [False, True, False, True, True], bins=10)
    assert [(b.low, b.count) for b in table] == [(0.0, 1), (0.1, 2), (0.9, 2)]
    assert table[1].mean_predicted == pytest.approx(0.135)
    assert table[1].observed == 0.5
    assert table[2].observed == 1.0


def test_ece_is_the_count_weighted_gap():
    table = reliability([0.2, 0.2, 0.8, 0.8], [False, True, True, True], bins=5)
    # bin [0.2, 0.4): predicted .2, observed .5; bin [0.8, 1.0]: predicted .8, observed 1
    assert expected_calibration_error(table) == pytest.approx((2 * 0.3 + 2 * 0.2) / 4)
    assert expected_calibration_error([]) == 0.0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="one label each"):
        reliability([0.1], [])
    with pytest.raises(ValueError, match="outside"):
        reliability([1.5], [True])
    with pytest.raises(ValueError, match="bins=0"):
        reliability([0.5], [True], bins=0)
