"""Evaluation: ranking measures (via ir-measures) and paired significance tests.

Context-pruning measures against sentence-level gold are in :mod:`ragprune.evaluation.pruning`; comparing
pruners at equal compression in :mod:`ragprune.evaluation.tradeoff`; spliced passages for the gold-position
slice in :mod:`ragprune.evaluation.splice`; acceptance gates in :mod:`ragprune.evaluation.gates`.
"""

from __future__ import annotations

from ragprune.evaluation.ranking import (
    DEFAULT_MEASURES,
    RankingEvaluation,
    evaluate_run,
    parse_measures,
    unreachable_measures,
)
from ragprune.evaluation.significance import PairedTestResult, compare_evaluations, compare_runs, paired_test

__all__ = [
    "DEFAULT_MEASURES",
    "PairedTestResult",
    "RankingEvaluation",
    "compare_evaluations",
    "compare_runs",
    "evaluate_run",
    "paired_test",
    "parse_measures",
    "unreachable_measures",
]
