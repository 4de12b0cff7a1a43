"""``Reranker``: the one interface of every reranking backend (AnswerDotAI ``rerankers``' shape).

A backend implements :meth:`Reranker.score_lists` (score each query's passages, in input order); ``process``
(input checks, ordering, ``top_k``), the ranking calls users know — ``rank``, ``rank_async``, ``prune``,
``predict`` — and ``rerank_run`` over TREC runs come from ``ragprune.ranking`` and
``ragprune.pipeline.rerank_run`` for every backend alike. One result type comes back: ``QueryResult``
from ``process``, ``RankedResults`` (its documents best first) from ``rank``/``prune``; each passage keeps one
score per head or backend (``PassageResult.scores``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

from ragprune import ranking
from ragprune.pipeline.inputs import PassageLike, QueryLike, parse_call
from ragprune.pipeline.order import order_passages
from ragprune.pipeline.results import QueryResult
from ragprune.types import Document, Query

if TYPE_CHECKING:
    import numpy as np

    from ragprune.ranking import RankedResults


class Reranker(ABC):
    """Scores passages for queries; a backend implements :meth:`score_lists` (the shared encoder, whose
    ``process`` takes more options, overrides :meth:`process` too)."""

    @overload
    def process(  # type: ignore[overload-overlap]  # a str is also a Sequence[str]; one query wins
        self,
        queries: QueryLike,
        passages: Sequence[PassageLike],
        *,
        threshold: float | None = None,
        top_k: int | None = None,
        reorder: bool = True,
        truncate: bool = False,
    ) -> QueryResult: ...
    @overload
    def process(
        self,
        queries: Sequence[QueryLike],
        passages: Sequence[Sequence[PassageLike]],
        *,
        threshold: float | None = None,
        top_k: int | None = None,
        reorder: bool = True,
        truncate: bool = False,
    ) -> list[QueryResult]: ...
    def process(
        self,
        queries: QueryLike | Sequence[QueryLike],
        passages: Sequence[PassageLike] | Sequence[Sequence[PassageLike]],
        *,
        threshold: float | None = None,
        top_k: int | None = None,
        reorder: bool = True,
        truncate: bool = False,
    ) -> QueryResult | list[QueryResult]:
        """Score (and, where the backend prunes, prune) ``passages`` for ``queries``.

        One query (str or ``Query``) with a list of passages gives one ``QueryResult``; a list of queries with
        one passage list each gives a list. ``reorder`` sorts passages best first (stable); ``top_k`` keeps
        the best k; ``threshold`` is the sentence keep threshold of backends that prune (others keep every
        sentence); ``truncate`` cuts over-long queries instead of raising ``ValueError``. Bad input raises
        ``ValueError`` naming it (``ragprune.pipeline.inputs.parse_call``).
        """
        single, query_list, documents = parse_call(queries, passages, top_k)
        results = self.score_lists(query_list, documents, threshold=threshold, truncate=truncate)
        ordered = [order_passages(result, reorder, top_k) for result in results]
        return ordered[0] if single else ordered

    @abstractmethod
    def score_lists(
        self,
        queries: list[Query],
        documents: list[list[Document]],
        *,
        threshold: float | None = None,
        truncate: bool = False,
    ) -> list[QueryResult]:
        """The backend's one job: a ``QueryResult`` per query with its passages in input order (``ranked_by``
        names the score that ranks them; ``-inf`` for a blank passage)."""

    def rank(self, query: QueryLike, docs: Sequence[PassageLike], **options: Any) -> RankedResults:
        """Rerank ``docs`` for one query, best first (``CrossEncoder.rank`` / ``rerankers`` shape).

        ``options`` are those of :func:`ragprune.ranking.rank`: ``top_k``, ``doc_ids``, ``metadata``,
        ``truncate``, ``first_stage_scores``, ``fusion``.
        """
        return ranking.rank(self, query, docs, **options)

    async def rank_async(
        self, query: QueryLike, docs: Sequence[PassageLike], **options: Any
    ) -> RankedResults:
        """:meth:`rank` in a worker thread, so an event loop keeps serving (``rerankers``' ``rank_async``)."""
        return await ranking.rank_async(self, query, docs, **options)

    def prune(self, query: QueryLike, docs: Sequence[PassageLike], **options: Any) -> RankedResults:
        """Rerank and prune ``docs`` for one query; each result carries its kept spans and pruned text.

        ``options`` are those of :func:`ragprune.ranking.prune` (:meth:`rank`'s and ``threshold``).
        """
        return ranking.prune(self, query, docs, **options)

    def predict(self, pairs: Sequence[tuple[str, str]], **options: Any) -> np.ndarray | float:
        """One relevance score per (query, passage) pair (sentence-transformers ``CrossEncoder.predict``);
        see :func:`ragprune.ranking.predict`."""
        return ranking.predict(self, pairs, **options)
