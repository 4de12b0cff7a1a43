"""Warnings shared by the commands that print ranking measures (``eval``, ``rerank --qrels``)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping


def warn(command: str, message: str) -> None:
    print(f"ragprune {command}: warning: {message}", file=sys.stderr)


def warn_unreachable(
    command: str, qrels_path: str, qrels: Mapping[str, Mapping[str, int]], measures: Iterable[str]
) -> None:
    """Warn about measures that are 0 whatever the run, e.g. ``RR(rel=2)@10`` on binary (BEIR) qrels."""
    from ragprune.evaluation import unreachable_measures

    zero = unreachable_measures(qrels, measures)
    if zero:
        warn(
            command,
            f"no judgement in {qrels_path} reaches the relevance threshold of {', '.join(zero)}, so they are "
            "0 whatever the run; use measures without rel=2 (e.g. RR@10, AP) for binary qrels",
        )
