"""ragprune: rerank retrieved passages and prune them to what answers the query, in one encoder pass."""

from __future__ import annotations

from ragprune.types import Document, Query, RankedList, ScoredDocument, Span

__version__ = "0.1.0"

__all__ = ["Document", "Query", "RankedList", "ScoredDocument", "Span", "__version__"]
