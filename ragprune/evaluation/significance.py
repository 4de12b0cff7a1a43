"""Paired significance tests between two systems' per-query scores.

Two tests over the queries both systems were evaluated on: Student's paired t-test and a paired
randomization test (each query's pair of scores swapped at random; exact when there are few queries),
both two-sided. The randomization test uses a fixed seed so reports are reproducible. When every query
changes by the same non-zero amount the t-test is undefined (zero variance) and reported as NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragprune.data.errors import DataMismatchError
from ragprune.evaluation.ranking import DEFAULT_MEASURES, RankingEvaluation, evaluate_run

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class PairedTestResult:
    """System B against system A on ``n`` common queries; ``mean_diff`` is mean(B - A)."""

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    t_statistic: float
    t_pvalue: float
    randomization_pvalue: float


def paired_test(
    per_query_a: Mapping[str, float],
    per_query_b: Mapping[str, float],
    *,
    resamples: int = 10_000,
    seed: int = 0,
) -> PairedTestResult:
    """Compare two systems' per-query values over the queries they share (at least two)."""
    import numpy as np
    from scipy import stats

    common = sorted(set(per_query_a) & set(per_query_b))
    if len(common) < 2:
        raise DataMismatchError(
            f"a paired test needs at least 2 queries scored by both systems, found {len(common)} "
            f"(A: {len(per_query_a)} queries, B: {len(per_query_b)}); compare runs made for the same topics"
        )
    a = np.array([per_query_a[qid] for qid in common], dtype=float)
    b = np.array([per_query_b[qid] for qid in common], dtype=float)
    diff = b - a
    if not np.any(diff):
        t_statistic, t_pvalue, randomization_pvalue = 0.0, 1.0, 1.0
    else:
        if np.ptp(diff) == 0:
            t_statistic, t_pvalue = math.nan, math.nan
        else:
            t_result = stats.ttest_rel(b, a)
            t_statistic, t_pvalue = float(t_result.statistic), float(t_result.pvalue)
        randomization = stats.permutation_test(
            (b, a),
            _mean_difference,
            permutation_type="samples",
            vectorized=True,
            n_resamples=resamples,
            alternative="two-sided",
            rng=np.random.default_rng(seed),
        )
        randomization_pvalue = float(randomization.pvalue)
    return PairedTestResult(
        n=len(common),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        mean_diff=float(diff.mean()),
        t_statistic=t_statistic,
        t_pvalue=t_pvalue,
        randomization_pvalue=randomization_pvalue,
    )


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    return (x - y).mean(axis=axis)


def compare_evaluations(
    first: RankingEvaluation, second: RankingEvaluation, *, resamples: int = 10_000, seed: int = 0
) -> dict[str, PairedTestResult]:
    """Per measure evaluated in both, the paired test of ``second`` (B) against ``first`` (A)."""
    return {
        name: paired_test(first.per_query[name], second.per_query[name], resamples=resamples, seed=seed)
        for name in first.measures
        if name in second.per_query
    }


def compare_runs(
    qrels: Mapping[str, Mapping[str, int]],
    run_a: Mapping[str, Mapping[str, float]],
    run_b: Mapping[str, Mapping[str, float]],
    measures: Iterable[str] = DEFAULT_MEASURES,
    *,
    resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, PairedTestResult]:
    """Per measure, the paired test of run B against run A over the judged queries."""
    measures = list(measures)
    return compare_evaluations(
        evaluate_run(qrels, run_a, measures),
        evaluate_run(qrels, run_b, measures),
        resamples=resamples,
        seed=seed,
    )
