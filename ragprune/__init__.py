"""ragprune: rerank retrieved passages and prune them to what answers the query, in one encoder pass.

Heavy parts (torch, transformers) load on first use: ``import ragprune`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ragprune.types import Document, Query, Span

if TYPE_CHECKING:
    from ragprune.pipeline import PassageResult, QueryResult, RerankPruner

__version__ = "0.1.0"

_LAZY = {
    "RerankPruner": "ragprune.pipeline",
    "QueryResult": "ragprune.pipeline",
    "PassageResult": "ragprune.pipeline",
}

__all__ = [
    "Document",
    "PassageResult",
    "Query",
    "QueryResult",
    "RerankPruner",
    "Span",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ragprune' has no attribute {name!r}")
