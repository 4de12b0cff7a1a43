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
class InputLimits:
    """How much of each field one encoder row holds, in the model tokenizer's tokens.

    A row is ``special tokens + query + title + passage text`` and holds at most ``window`` tokens.
    The policy (the same in the API, CLI, server and integrations):

    * the query may use up to ``max_query_tokens`` (half the window); a longer
      query is an error, or with ``truncate=True`` is cut to its first ``max_query_tokens`` tokens and
      the result says so (``truncated`` contains ``"query"``);
    * a title may use up to ``max_title_tokens`` (a quarter of the window); a longer one is always cut
      to its first tokens, and the result says so (``truncated`` contains ``"title"``); titles are
      context, never pruned;
    * the passage text gets the rest of the row, at least ``min_passage_tokens``; a longer passage is
      never truncated but cut into chunks at sentence boundaries, each scored with the query and title.
    """

    window: int
    special_tokens: int
    max_query_tokens: int
    max_title_tokens: int

    @classmethod
    def for_window(cls, window: int, special_tokens: int) -> InputLimits:
        """The limits of a model that reads ``window`` tokens per row, ``special_tokens`` of them its own."""
        limits = cls(window, special_tokens, window // 2, window // 4)
        if limits.min_passage_tokens < 1:
            raise ValueError(
                f"a {window}-token window with {special_tokens} special tokens leaves no room for the "
                "passage once the query and title take their shares; use a larger max_length"
            )
        return limits

    @property
    def min_passage_tokens(self) -> int:
        """Passage tokens per row when the query and title use their whole share."""
        return self.window - self.special_tokens - self.max_query_tokens - self.max_title_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "window": self.window,
            "special_tokens": self.special_tokens,
            "max_query_tokens": self.max_query_tokens,
            "max_title_tokens": self.max_title_tokens,
            "min_passage_tokens": self.min_passage_tokens,
        }


def json_float(value: float) -> float | None:
    """A float as JSON can carry it: non-finite values become ``None`` (``null``)."""
    return value if math.isfinite(value) else None
