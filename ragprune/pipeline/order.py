"""Rank a query's passage results by score: shared by every reranking backend."""

from __future__ import annotations

from dataclasses import replace

from ragprune.pipeline.results import QueryResult


def order_passages(result: QueryResult, reorder: bool, top_k: int | None) -> QueryResult:
    """Set each passage's ``rank`` (1 = highest ``result.ranking_score``; ties keep input order) and return
    the result with its passages best first (``reorder``) or in input order, cut to the ``top_k`` best when
    given."""
    by_score = sorted(result.passages, key=lambda r: (-result.ranking_score(r), r.index))
    for rank, passage in enumerate(by_score, start=1):
        passage.rank = rank
    passages = by_score if reorder else result.passages
    if top_k is not None:
        passages = by_score[:top_k] if reorder else [p for p in passages if p.rank <= top_k]
    return replace(result, passages=passages)
