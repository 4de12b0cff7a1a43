"""Rerank a whole TREC run: the step behind ``ragprune rerank`` and the evaluation scripts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ragprune.data import DataMismatchError, ranked_items
from ragprune.pipeline.process import RerankPruner
from ragprune.pipeline.results import QueryResult
from ragprune.types import Document, Query


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
    pruner: RerankPruner,
    queries: Mapping[str, str],
    run: Mapping[str, Mapping[str, float]],
    corpus: Mapping[str, Document],
    top_k: int = 100,
    threshold: float | None = None,
) -> RerankedRun:
    """Rerank (and prune) the top ``top_k`` documents of every query in ``run``.

    Documents below ``top_k`` stay in the run, after the reranked ones and in their old order, so
    nothing the first stage returned is lost. Query and document ids must be known.
    """
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
    results = pruner.process([Query(qid, queries[qid]) for qid in qids], heads, threshold=threshold)
    new_run: dict[str, dict[str, float]] = {}
    for qid, result, tail in zip(qids, results, tails):
        scores = {p.document.id: p.logit for p in result if math.isfinite(p.logit)}
        below = [
            p.document.id for p in result if not math.isfinite(p.logit)
        ] + tail  # empty passages, then the rest
        floor = min(scores.values(), default=0.0)
        scores.update({doc_id: floor - 1.0 - i for i, doc_id in enumerate(below)})
        new_run[qid] = scores
    return RerankedRun(new_run, results)
