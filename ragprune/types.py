"""Core value types shared by every part of ragprune.

Everything the user passes in (ids, titles, metadata) travels through these types untouched, and
every piece of a passage that pruning keeps is a ``Span`` of character offsets into the original
text, so the full text stays recoverable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class Span:
    """A half-open ``[start, end)`` character range into an original text."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"invalid span ({self.start}, {self.end}): need 0 <= start <= end")

    def __len__(self) -> int:
        return self.end - self.start

    def slice(self, text: str) -> str:
        """The part of ``text`` this span covers."""
        return text[self.start : self.end]

    def to_list(self) -> list[int]:
        return [self.start, self.end]


@dataclass(frozen=True)
class Query:
    """A search query with the caller's id."""

    id: str
    text: str


@dataclass(frozen=True)
class Document:
    """A passage or document: id, text, optional title and free-form metadata (kept verbatim)."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "text": self.text}
        if self.title:
            out["title"] = self.title
        if self.metadata:
            out["metadata"] = self.metadata
        return out


@dataclass(frozen=True)
class ScoredDocument:
    """A document with a retrieval or reranking score."""

    document: Document
    score: float


@dataclass(frozen=True)
class RankedList:
    """The candidates of one query, best first."""

    query: Query
    items: list[ScoredDocument]


def json_float(value: float) -> float | None:
    """A float as JSON can carry it: non-finite values become ``None`` (``null``)."""
    return value if math.isfinite(value) else None
