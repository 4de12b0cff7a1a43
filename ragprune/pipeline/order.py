"""Rank a query's passage results by score: shared by every reranking backend."""

from __future__ import annotations

from dataclasses import replace

from ragprune.pipeline.results import PassageResult, QueryResult


def order_passages(result: QueryResult, reorder: bool, top_k: int | None, by: str = "rank") -> QueryResult:
    """Set each passage's ``rank`` (1 = highest score; ties keep input order) and return the result with
    its passages best first (``reorder``) or in input order, cut to the ``top_k`` best when given.

    ``by``: ``"rank"`` orders by ``logit``; another name by that entry of each passage's ``scores``.
    """

    def score(passage: PassageResult) -> float:
        return passage.logit if by == "rank" else passage.scores[by]

    by_score = sorted(result.passages, key=lambda r: (-score(r), r.index))
    for rank, passage in enumerate(by_score, start=1):
        passage.rank = rank
    passages = by_score if reorder else result.passages
    if top_k is not None:
        passages = by_score[:top_k] if reorder else [p for p in passages if p.rank <= top_k]
    return replace(result, passages=passages)
