"""Rerank + prune large inputs across GPUs, processes or machines.

One entry, :func:`rerank_prune`, runs any of three engines over the same work units (one query with its
candidates each) and writes the same files: a TREC run and, optionally, the pruned passages as JSONL
(one line per query, as ``ragprune rerank --pruned-output`` writes them).

* ``"inline"``: this process, one device (the reference the others must match);
* ``"local"``: one worker process per local GPU (or N CPU worker processes), no Ray needed;
* ``"ray"``: Ray Data ``map_batches`` with one model-holding actor per GPU (CPU actors without GPUs),
  on this machine or a Ray cluster; needs the ``distributed`` extra (``pip install 'ragprune[distributed]'``).

Inputs (:mod:`ragprune.distributed.inputs`): a TREC run with its topics and passages, or JSONL / Parquet
rows of ``{qid, query, docid, text}``. Every engine checks at the end that each input pair came back
exactly once (:class:`IncompleteOutputError` names the query ids otherwise).

Nothing here imports Ray (or torch) until an engine runs: ``import ragprune.distributed`` is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragprune.lazy import lazy_exports

if TYPE_CHECKING:
    from ragprune.distributed.api import ENGINES, RunSummary, rerank_prune
    from ragprune.distributed.faults import FailOnce, InjectedFailure
    from ragprune.distributed.inputs import read_rows, read_trec, rows_to_tasks, trec_to_tasks
    from ragprune.distributed.output import IncompleteOutputError
    from ragprune.distributed.tasks import QueryTask, RerankInput

__all__ = [
    "ENGINES",
    "FailOnce",
    "IncompleteOutputError",
    "InjectedFailure",
    "QueryTask",
    "RerankInput",
    "RunSummary",
    "read_rows",
    "read_trec",
    "rerank_prune",
    "rows_to_tasks",
    "trec_to_tasks",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "ENGINES": "ragprune.distributed.api",
        "RunSummary": "ragprune.distributed.api",
        "rerank_prune": "ragprune.distributed.api",
        "FailOnce": "ragprune.distributed.faults",
        "InjectedFailure": "ragprune.distributed.faults",
        "read_rows": "ragprune.distributed.inputs",
        "read_trec": "ragprune.distributed.inputs",
        "rows_to_tasks": "ragprune.distributed.inputs",
        "trec_to_tasks": "ragprune.distributed.inputs",
        "IncompleteOutputError": "ragprune.distributed.output",
        "QueryTask": "ragprune.distributed.tasks",
        "RerankInput": "ragprune.distributed.tasks",
    },
)
