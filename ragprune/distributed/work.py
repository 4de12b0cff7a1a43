"""What every engine's worker does with a batch of whole queries: rerank + prune them with
:func:`ragprune.pipeline.rerank_run.rerank_run` (the code path of ``ragprune rerank``) and turn each query
into plain output (its run lines' scores and its pruned-JSONL line), so engines only move strings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragprune.distributed.tasks import QueryTask
from ragprune.types import Document

if TYPE_CHECKING:
    from ragprune.pipeline import RerankPruner


@dataclass(frozen=True)
class PrunerSettings:
    """How a worker loads its model and scores: picklable, the same for every worker of a run.

    ``model``: a model folder (``None``: the shipped model); it must be readable from every worker.
    ``device``: the worker's device; ``None`` lets the engine choose. ``threads``: torch CPU threads of a
    CPU worker (``None``: torch's default). ``fusion``: a ``ragprune.fusion`` spec. ``top_k``: candidates
    per query (:attr:`RerankInput.top_k`).
    """

    model: str | None
    top_k: int
    fusion: str
    device: str | None = None
    batch_size: int = 64
    threshold: float | None = None
    mode: str = "pointwise"
    threads: int | None = None
    prepare_workers: int | None = None

    def load(self, device: str | None = None) -> RerankPruner:
        """The pruner these settings describe, on ``device`` (default: :attr:`device`)."""
        from ragprune.pipeline import RerankPruner

        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        return RerankPruner.load(
            self.model,
            device=device or self.device,
            batch_size=self.batch_size,
            mode=self.mode,
            progress=False,
            prepare_workers=self.prepare_workers,
        )


@dataclass(frozen=True)
class QueryOutput:
    """One query's share of the output files.

    ``run``: (doc id, score) best first, every document of the task's run (candidates, then those below
    ``top_k``); ``pruned``: the query's pruned-JSONL line without its newline (``QueryResult.to_dict``,
    non-ASCII written as is); ``pairs``: passages scored; ``compression``: their summed compression.
    """

    qid: str
    run: tuple[tuple[str, float], ...]
    pruned: str
    pairs: int
    compression: float

    def to_row(self) -> dict[str, object]:
        """This output as a flat row of strings and numbers (what the Ray engine returns)."""
        return {
            "qid": self.qid,
            "run": json.dumps(self.run),
            "pruned": self.pruned,
            "pairs": self.pairs,
            "compression": self.compression,
        }

    @classmethod
    def from_row(cls, row: dict) -> QueryOutput:
        run = tuple((str(doc_id), float(score)) for doc_id, score in json.loads(row["run"]))
        return cls(str(row["qid"]), run, str(row["pruned"]), int(row["pairs"]), float(row["compression"]))


def process_tasks(
    pruner: RerankPruner, tasks: Sequence[QueryTask], settings: PrunerSettings
) -> list[QueryOutput]:
    """Rerank + prune ``tasks`` in one ``process`` call (batched across their queries); outputs in task
    order. Raises ``ValueError`` if two tasks give one doc id different passages (inputs check this)."""
    from ragprune.data import ranked_items
    from ragprune.pipeline.rerank_run import rerank_run

    corpus: dict[str, Document] = {}
    for task in tasks:
        for doc in task.candidates:
            if corpus.setdefault(doc.id, doc) != doc:
                raise ValueError(f"doc id {doc.id!r} names two different passages in one batch")
    reranked = rerank_run(
        pruner,
        {task.qid: task.query for task in tasks},
        {task.qid: task.run for task in tasks},
        corpus,
        top_k=settings.top_k,
        threshold=settings.threshold,
        fusion=settings.fusion,
    )
    by_qid = {result.query.id: result for result in reranked.results}
    outputs = []
    for task in tasks:
        result = by_qid[task.qid]
        outputs.append(
            QueryOutput(
                task.qid,
                tuple(ranked_items(reranked.run[task.qid])),
                _json_line(result.to_dict()),
                len(result),
                sum(passage.compression for passage in result),
            )
        )
    return outputs


def _json_line(record: object) -> str:
    """``record`` as JSON, non-ASCII as is; ``\\u`` escapes where UTF-8 cannot hold a string (a lone
    surrogate), as ``ragprune rerank --pruned-output`` writes it."""
    text = json.dumps(record, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(record)
    return text
