"""Ranking measures over TREC-style qrels and runs, computed by ir-measures.

Measure names use ir-measures syntax (``nDCG@10``, ``RR(rel=2)@10``, ``R@100``, ``AP(rel=2)``).
Queries judged in the qrels but absent from the run score 0 (as with ``trec_eval -c``), so a run cannot
look better by skipping hard queries; they are listed in :attr:`RankingEvaluation.unranked_queries` so
callers can report them. Run queries without judgements are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from ragprune.data.trec import common_queries

if TYPE_CHECKING:
    from ir_measures import Measure

#: nDCG@10 (graded), MRR@10 and MAP counting grade >= 2 as relevant (TREC DL convention), recall@100.
DEFAULT_MEASURES: tuple[str, ...] = ("nDCG@10", "RR(rel=2)@10", "R@100", "AP(rel=2)")

_EXAMPLES = "nDCG@10, RR(rel=2)@10, R@100, AP(rel=2), P@5"


@dataclass(frozen=True)
class RankingEvaluation:
    """Measures of one run: means over ``queries`` (every judged query), per-query values, and the judged
    queries the run has no results for (scored 0)."""

    measures: list[str]
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]
    queries: list[str]
    unranked_queries: list[str]


def parse_measures(names: Iterable[str]) -> list[Measure]:
    """ir-measures ``Measure`` objects for ``names`` (duplicates dropped, order kept).

    Raises ``ValueError`` naming the bad measure and showing valid examples.
    """
    import ir_measures

    measures: list[Measure] = []
    for name in names:
        try:
            measure = ir_measures.parse_measure(name.strip())
        except (NameError, ValueError, KeyError, TypeError, SyntaxError) as error:
            raise ValueError(
                f"unknown measure {name!r} ({error}); use ir-measures names such as {_EXAMPLES}"
            ) from None
        if measure not in measures:
            measures.append(measure)
    if not measures:
        raise ValueError(f"no measures given; use ir-measures names such as {_EXAMPLES}")
    return measures


def evaluate_run(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    measures: Iterable[str] = DEFAULT_MEASURES,
) -> RankingEvaluation:
    """Evaluate ``run`` against ``qrels``; raises ``DataMismatchError`` if they share no query."""
    import ir_measures

    parsed = parse_measures(measures)
    common_queries(qrels, run)
    names = [str(measure) for measure in parsed]
    result = ir_measures.calc(parsed, _plain(qrels), _plain(run))
    per_query: dict[str, dict[str, float]] = {name: {} for name in names}
    for metric in result.per_query:
        per_query[str(metric.measure)][metric.query_id] = float(metric.value)
    # ir-measures types ``aggregated`` as "a dict, or a bare number when calc() was given one measure";
    # it is always the dict here (``parsed`` is a list).
    aggregated = cast("dict[Measure, float | int]", result.aggregated)
    aggregate = {str(measure): float(value) for measure, value in aggregated.items()}
    return RankingEvaluation(
        measures=names,
        aggregate={name: aggregate[name] for name in names},
        per_query={name: dict(sorted(values.items())) for name, values in per_query.items()},
        queries=sorted({qid for values in per_query.values() for qid in values}),
        unranked_queries=sorted(set(qrels) - set(run)),
    )


def unreachable_measures(qrels: Mapping[str, Mapping[str, int]], measures: Iterable[str]) -> list[str]:
    """The measures whose relevance threshold (``rel=``) is above every grade in ``qrels``: they are 0 by
    construction, e.g. ``RR(rel=2)@10`` on binary BEIR qrels (use ``RR@10`` there)."""
    top_grade = max((grade for judged in qrels.values() for grade in judged.values()), default=0)
    return [str(m) for m in parse_measures(measures) if m.params.get("rel", 1) > top_grade]


def _plain(nested: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """ir-measures recognises plain ``dict`` of ``dict`` inputs only, not arbitrary mappings."""
    return {qid: dict(values) for qid, values in nested.items()}
