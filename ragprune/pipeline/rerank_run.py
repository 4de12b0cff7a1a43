"""Rerank a whole TREC run: the step behind ``ragprune rerank`` and the evaluation scripts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragprune.data import DataMismatchError, ranked_items
from ragprune.fusion import DEFAULT_FUSION, Fusion, best_first, parse_fusion
from ragprune.pipeline.results import QueryResult
from ragprune.types import Document, Query

if TYPE_CHECKING:
    from ragprune.rerankers.base import Reranker


@dataclass
class RerankedRun:
    """The new run (query id -> doc id -> score) and the full per-passage results behind it."""

    run: dict[str, dict[str, float]]
    results: list[QueryResult]

    @property
    def mean_compression(self) -> float:
        passages = [p for result in self.results for p in result]
        return sum(p.compression for p in passages) / max(1, len(passages))


def rerank_run(
    pruner: Reranker,
    queries: Mapping[str, str],
    run: Mapping[str, Mapping[str, float]],
    corpus: Mapping[str, Document],
    top_k: int = 100,
    threshold: float | None = None,
    fusion: Fusion | str = DEFAULT_FUSION,
) -> RerankedRun:
    """Rerank (and prune) the top ``top_k`` documents of every query in ``run``.

    The new run's scores are the reranker's logits fused with the run's own scores by ``fusion``
    (``ragprune.fusion``; ``"none"``: the logits alone); see :func:`fuse_run`. ``results`` keep every
    passage's logit and list the passages in the new run's order, with ``rank`` their place in it.
    Query and document ids must be known (``DataMismatchError``); a bad ``fusion`` raises ``ValueError``.
    """
    fusion = parse_fusion(fusion)
    missing_queries = sorted(set(run) - set(queries))
    if missing_queries:
        raise DataMismatchError(
            f"{len(missing_queries)} run queries have no text in the queries file "
            f"(e.g. {missing_queries[:3]}); "
            "pass the topics file that belongs to this run"
        )
    qids = sorted(run)
    heads, tails = [], []
    for qid in qids:
        ranked = [doc_id for doc_id, _ in ranked_items(run[qid])]
        unknown = [doc_id for doc_id in ranked[:top_k] if doc_id not in corpus]
        if unknown:
            raise DataMismatchError(
                f"query {qid}: {len(unknown)} run documents are not in the passages/corpus file "
                f"(e.g. {unknown[:3]}); pass the collection this run was retrieved from"
            )
        heads.append([corpus[doc_id] for doc_id in ranked[:top_k]])
        tails.append(ranked[top_k:])
    results = pruner.process(
        [Query(qid, queries[qid]) for qid in qids], heads, threshold=threshold, reorder=False
    )
    logits = {
        qid: {p.document.id: result.ranking_score(p) for p in result} for qid, result in zip(qids, results)
    }
    new_run = fuse_run(logits, run, fusion, top_k)
    for qid, result in zip(qids, results):
        place = {doc_id: rank for rank, (doc_id, _) in enumerate(ranked_items(new_run[qid]), start=1)}
        for passage in result.passages:
            passage.rank = place[passage.document.id]
        result.passages.sort(key=lambda passage: passage.rank)
    return RerankedRun(new_run, results)


def fuse_run(
    logits: Mapping[str, Mapping[str, float]],
    run: Mapping[str, Mapping[str, float]],
    fusion: Fusion | str,
    top_k: int,
) -> dict[str, dict[str, float]]:
    """The reranked run: each query's top ``top_k`` of ``run`` ordered by ``fusion`` of the reranker's
    ``logits`` (query id -> doc id -> logit, for those documents) with the run's own scores.

    Scores are the fused scores, nudged apart by a few ulps where they tie so that every evaluator sees
    the order of :func:`ragprune.fusion.best_first` (ties keep the run's order). Documents with a
    non-finite logit (empty passages), then the documents below ``top_k`` in their old order, follow
    with lower scores, so nothing the first stage returned is lost.
    """
    fusion = parse_fusion(fusion)
    new_run: dict[str, dict[str, float]] = {}
    for qid in sorted(run):
        ranked = ranked_items(run[qid])
        head, tail = ranked[:top_k], [doc_id for doc_id, _ in ranked[top_k:]]
        fused = fusion.fuse([logits[qid][doc_id] for doc_id, _ in head], [score for _, score in head])
        order = best_first(fused)
        scores: dict[str, float] = {}
        last = math.inf
        for i in (i for i in order if math.isfinite(fused[i])):
            last = min(fused[i], math.nextafter(last, -math.inf))  # strictly below the one before
            scores[head[i][0]] = last
        below = [head[i][0] for i in order if not math.isfinite(fused[i])] + tail
        floor = last if scores else 0.0
        scores.update({doc_id: floor - 1.0 - j for j, doc_id in enumerate(below)})
        new_run[qid] = scores
    return new_run
