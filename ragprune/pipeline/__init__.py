"""The rerank + prune pipeline: inputs, encoding into rows, the stage runner, results.

``RerankPruner`` loads lazily, so importing a submodule (``ragprune.pipeline.results``) does not import the
model code.
"""

from __future__ import annotations

from typing import Any

from ragprune.pipeline.results import PassageResult, QueryResult, SentenceScore, SentenceView


def __getattr__(name: str) -> Any:
    if name == "RerankPruner":
        from ragprune.pipeline.process import RerankPruner

        return RerankPruner
    raise AttributeError(f"module 'ragprune.pipeline' has no attribute {name!r}")


__all__ = ["PassageResult", "QueryResult", "RerankPruner", "SentenceScore", "SentenceView"]
