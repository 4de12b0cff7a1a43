"""What ``process`` returns: scores, per-sentence decisions and kept character spans per passage.

Pruned text is always derived from the spans, so the original passage (kept on the result) and
everything the caller attached to it survive untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ragprune.types import Document, Query, Span, json_float


@dataclass(frozen=True)
class SentenceScore:
    span: Span
    score: float
    kept: bool


def require_rethresholdable(reduce: str) -> None:
    """Threshold sweeps score once and compare the sentence scores with each threshold; that is exact
    for ``mean`` and ``max``, whose scores do not depend on the threshold, but not for ``vote``."""
    if reduce == "vote":
        raise ValueError(
            "threshold sweeps need sentence_reduce 'mean' or 'max': a 'vote' score depends on the threshold; "
            "run process once per threshold instead"
        )


@dataclass
class PassageResult:
    """One passage of one query: relevance, sentence decisions and what was kept.

    ``index`` is the passage's position in the caller's input; ``rank`` its 1-based position by score.
    ``chunks`` > 1 means the passage was longer than the encoder window and was scored in pieces
    (cut at sentence boundaries, score = the best piece's, sentence decisions merged).
    Empty or whitespace-only passages are not encoded: logit ``-inf``, probability 0, nothing kept.
    """

    document: Document
    index: int
    logit: float
    probability: float
    sentences: list[SentenceScore] = field(default_factory=list)
    chunks: int = 0
    rank: int = 0

    @property
    def kept_spans(self) -> list[Span]:
        """Kept sentences, with neighbours that only whitespace separates merged into one span."""
        spans: list[Span] = []
        text = self.document.text
        for sentence in self.sentences:
            if not sentence.kept:
                continue
            last = spans[-1] if spans else None
            if last is not None and not text[last.end : sentence.span.start].strip():
                spans[-1] = Span(last.start, sentence.span.end)
            else:
                spans.append(sentence.span)
        return spans

    @property
    def pruned_text(self) -> str:
        """The kept spans in order; non-adjacent spans are joined by one space."""
        return " ".join(span.slice(self.document.text) for span in self.kept_spans)

    @property
    def compression(self) -> float:
        """Share of the passage's characters that pruning removed (0 for an empty passage)."""
        total = len(self.document.text)
        if total == 0:
            return 0.0
        return 1.0 - sum(len(span) for span in self.kept_spans) / total

    @property
    def chunked(self) -> bool:
        return self.chunks > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.document.to_dict(),
            "index": self.index,
            "rank": self.rank,
            "logit": json_float(self.logit),
            "probability": self.probability,
            "sentences": [
                {"span": s.span.to_list(), "score": s.score, "kept": s.kept} for s in self.sentences
            ],
            "kept_spans": [span.to_list() for span in self.kept_spans],
            "pruned_text": self.pruned_text,
            "compression": self.compression,
            "chunks": self.chunks,
        }


@dataclass
class QueryResult:
    """All passages of one query, best first when the call asked to reorder, else in input order."""

    query: Query
    passages: list[PassageResult]

    def __iter__(self):
        return iter(self.passages)

    def __len__(self) -> int:
        return len(self.passages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query_id": self.query.id,
            "query": self.query.text,
            "passages": [passage.to_dict() for passage in self.passages],
        }
