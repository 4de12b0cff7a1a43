"""The unit of distributed work: one query with all of its candidates (ranking is per query, so a query's
candidates never travel apart), and its plain-JSON form for shipping to workers."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ragprune.types import Document


@dataclass(frozen=True)
class QueryTask:
    """One query to rerank and prune.

    ``candidates``: the documents to score, best first by the first stage (what ``top_k`` of the input
    run selected). ``run``: the first stage's scores of *every* document of the query (doc id -> score),
    the candidates and those below ``top_k``, which the output run keeps, ranked after the candidates.
    """

    qid: str
    query: str
    candidates: tuple[Document, ...]
    run: dict[str, float] = field(hash=False, compare=False)

    @property
    def pairs(self) -> int:
        """(query, passage) pairs the model scores for this query."""
        return len(self.candidates)

    def to_payload(self) -> str:
        """This task as one JSON string (what engines send to workers; floats round-trip exactly)."""
        docs = [[d.id, d.text, d.title, d.metadata] for d in self.candidates]
        return json.dumps(
            {"qid": self.qid, "query": self.query, "docs": docs, "run": list(self.run.items())},
            ensure_ascii=False,
        )

    @classmethod
    def from_payload(cls, payload: str) -> QueryTask:
        """The task :meth:`to_payload` wrote."""
        data = json.loads(payload)
        docs = tuple(
            Document(doc_id, text, title, metadata) for doc_id, text, title, metadata in data["docs"]
        )
        return cls(data["qid"], data["query"], docs, {doc_id: score for doc_id, score in data["run"]})


@dataclass(frozen=True)
class RerankInput:
    """Everything an engine needs to know about the input: the tasks in query-id order and ``top_k``, the
    number of candidates per query (every task has at most ``top_k``). ``has_scores``: whether the first
    stage gave real scores (a TREC run, or rows with a ``score`` column) or only an order."""

    tasks: tuple[QueryTask, ...]
    top_k: int
    has_scores: bool = True

    @property
    def pairs(self) -> int:
        return sum(task.pairs for task in self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def batches(self, queries_per_batch: int) -> Iterator[Sequence[QueryTask]]:
        """Consecutive groups of ``queries_per_batch`` whole queries, in order."""
        if queries_per_batch < 1:
            raise ValueError(f"queries_per_batch={queries_per_batch}; use a positive number of queries")
        for start in range(0, len(self.tasks), queries_per_batch):
            yield self.tasks[start : start + queries_per_batch]
