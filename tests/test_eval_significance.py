from __future__ import annotations

import math

import pytest
from scipy import stats

from ragprune.data import DataMismatchError
from ragprune.evaluation import compare_runs, paired_test


def test_exact_randomization_and_t_test_on_a_consistent_improvement() -> None:
    a = {f"q{i}": 0.0 for i in range(5)}
    b = {f"q{i}": float(i + 1) for i in range(5)}
    result = paired_test(a, b)
    assert (result.n, result.mean_a, result.mean_b, result.mean_diff) == (5, 0.0, 3.0, 3.0)
    # 2^5 sign assignments; only "all +" and "all -" are as extreme as the observed one.
    assert result.randomization_pvalue == pytest.approx(2 / 32)
    # t = mean / (sd / sqrt(n)) = 3 / (sqrt(2.5) / sqrt(5)); two-sided p from t(4).
    t = 3 / (2.5**0.5 / 5**0.5)
    assert result.t_statistic == pytest.approx(t)
    assert result.t_pvalue == pytest.approx(2 * stats.t.sf(t, df=4))


def test_only_common_queries_count_and_identical_systems_give_p_one() -> None:
    a = {"q1": 0.5, "q2": 0.2, "only_a": 1.0}
    b = {"q1": 0.5, "q2": 0.2, "only_b": 0.0}
    result = paired_test(a, b)
    assert (result.n, result.mean_diff, result.t_pvalue, result.randomization_pvalue) == (2, 0.0, 1.0, 1.0)


def test_randomization_test_is_deterministic_for_a_seed() -> None:
    a = {f"q{i}": (i * 37 % 11) / 11 for i in range(40)}
    b = {f"q{i}": (i * 53 % 13) / 13 for i in range(40)}
    first = paired_test(a, b, resamples=2000, seed=3)
    assert paired_test(a, b, resamples=2000, seed=3) == first
    assert 0.0 < first.randomization_pvalue <= 1.0


def test_no_common_queries() -> None:
    with pytest.raises(DataMismatchError) as error:
        paired_test({"q1": 1.0, "q2": 0.0}, {"q3": 1.0})
    assert str(error.value) == (
        "a paired test needs at least 2 queries scored by both systems, found 0 (A: 2 queries, B: 1); "
        "compare runs made for the same topics"
    )


def test_compare_runs_per_measure() -> None:
    qrels = {f"q{i}": {"good": 1, "bad": 0} for i in range(6)}
    worse = {qid: {"bad": 2.0, "good": 1.0} for qid in qrels}
    better = {qid: {"good": 2.0, "bad": 1.0} for qid in qrels}
    tests = compare_runs(qrels, worse, better, ["RR@10", "R@100"])
    assert tests["RR@10"].mean_diff == pytest.approx(0.5)
    assert tests["RR@10"].randomization_pvalue == pytest.approx(2 / 64)
    # Every query gains exactly 0.5: the differences have no variance, so the t-test is undefined.
    assert math.isnan(tests["RR@10"].t_pvalue)
    assert tests["R@100"].mean_diff == 0.0
