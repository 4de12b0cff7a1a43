"""What ``process`` returns: scores, per-sentence decisions and kept character spans per passage.

Pruned text is always derived from the spans, so the original passage (kept on the result) and
everything the caller attached to it survive untouched. It keeps the passage's layout: the text between
kept neighbours as it was, and where sentences were dropped the strongest whitespace break they spanned
(a paragraph break stays a paragraph break, list items stay on their own lines).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from ragprune.normalize import repair_text
from ragprune.types import Document, Query, Span, json_float


@dataclass(frozen=True)
class SentenceScore:
    span: Span
    score: float
    kept: bool


class SentenceView(Sequence[SentenceScore]):
    """A passage's sentences read from flat arrays on access: ``process`` builds no ``SentenceScore`` (nor
    ``Span``) objects until the caller reads them. Read-only; equal to a list of the same sentences.

    ``bounds``: ``[n, 2]`` int64 ``(start, end)`` character offsets; ``scores``: ``[n]`` float32;
    ``kept``: ``[n]`` bool (slices of the call's columns). Not a list: ``list(view)`` for a mutable copy;
    ``dataclasses.asdict`` copies the view as it is (use ``PassageResult.to_dict`` for JSON).
    """

    __slots__ = ("_bounds", "_kept", "_scores")

    def __init__(self, bounds: np.ndarray, scores: np.ndarray, kept: np.ndarray) -> None:
        self._bounds, self._scores, self._kept = bounds, scores, kept

    def __len__(self) -> int:
        return len(self._kept)

    @overload
    def __getitem__(self, index: int) -> SentenceScore: ...
    @overload
    def __getitem__(self, index: slice) -> list[SentenceScore]: ...
    def __getitem__(self, index: int | slice) -> SentenceScore | list[SentenceScore]:
        if isinstance(index, slice):
            return list(self)[index]
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"sentence indices must be integers or slices, not {type(index).__name__}")
        start, end = self._bounds[index].tolist()
        return SentenceScore(Span(start, end), float(self._scores[index]), bool(self._kept[index]))

    def __iter__(self) -> Iterator[SentenceScore]:
        # .tolist(): plain ints, floats and bools, far cheaper than numpy scalars
        rows = zip(self._bounds.tolist(), self._scores.tolist(), self._kept.tolist())
        return (SentenceScore(Span(start, end), score, kept) for (start, end), score, kept in rows)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which are not hashable

    def __repr__(self) -> str:
        return repr(list(self))

    def kept_bounds(self) -> list[tuple[int, int]]:
        """``(start, end)`` of the kept sentences, in text order."""
        return [(start, end) for start, end in self._bounds[self._kept].tolist()]


def _kept_bounds(sentences: Sequence[SentenceScore]) -> list[tuple[int, int]]:
    """``(start, end)`` of the kept sentences, in order (straight from the arrays of a ``SentenceView``)."""
    if isinstance(sentences, SentenceView):
        return sentences.kept_bounds()
    return [(s.span.start, s.span.end) for s in sentences if s.kept]


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
    ``truncated`` names what was cut to fit the window (``"query"``, ``"title"``; see ``InputLimits``);
    the passage text itself never is.
    ``scores`` holds one value per scoring head of the model (``"rank"``: the relevance logit, equal to
    ``logit``; list-level heads such as ``"listwise"`` when the model has them), so no head's score
    overwrites another's.
    Passages without a visible character (or without a token the model reads) are not encoded:
    logit ``-inf`` (every score too), probability 0, no sentences, nothing kept.
    ``sentences`` is any sequence; ``process`` gives a read-only ``SentenceView`` over its arrays (replace
    it, e.g. with ``dataclasses.replace``, rather than changing it in place).
    """

    document: Document
    index: int
    logit: float
    probability: float
    sentences: Sequence[SentenceScore] = field(default_factory=list)
    chunks: int = 0
    rank: int = 0
    truncated: tuple[str, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def kept_spans(self) -> list[Span]:
        """Kept sentences, with neighbours that only whitespace separates merged into one span."""
        merged: list[list[int]] = []
        text = self.document.text
        for start, end in _kept_bounds(self.sentences):
            if merged and not text[merged[-1][1] : start].strip():
                merged[-1][1] = end
            else:
                merged.append([start, end])
        return [Span(start, end) for start, end in merged]

    @property
    def pruned_text(self) -> str:
        """The kept sentences in order with the passage's own separators (see ``pruned``)."""
        return self.pruned()

    def pruned(self, elision: str | None = None) -> str:
        """The kept sentences in order, laid out as in the passage.

        Kept neighbours keep the text between them exactly. Where sentences were dropped, the separator
        is the dropped stretch's whitespace gap with the most newlines (the last such gap, so a list
        item keeps its own indentation; one space where the sentences touched), and ``elision`` (e.g.
        ``"…"``), when given, stands in for the dropped sentences, also before the first and after the last
        kept sentence when the passage's start or end was dropped. The text is cut from the passage
        with lone surrogates shown as U+FFFD (``ragprune.normalize.repair_text``; same offsets).
        """
        text = repair_text(self.document.text)
        parts: list[str] = []
        dropped: list[str] | None = None  # the gaps of the dropped stretch since the last kept sentence
        for i, sentence in enumerate(self.sentences):
            gap = text[self.sentences[i - 1].span.end : sentence.span.start] if i else ""
            if not sentence.kept:
                dropped = [*(dropped or []), gap]
                continue
            if dropped is not None:
                separator = _strongest([*dropped, gap])
                if parts:
                    parts.append(f"{separator}{elision}{separator}" if elision else separator)
                elif elision:
                    parts.append(f"{elision}{separator}")
            elif parts:
                parts.append(gap)
            parts.append(sentence.span.slice(text))
            dropped = None
        if parts and dropped is not None and elision:
            parts.append(_strongest(dropped) + elision)
        return "".join(parts)

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
            "truncated": list(self.truncated),
        }


def _strongest(gaps: list[str]) -> str:
    """The gap with the most newlines (the last of equals); one space if the gaps are all empty."""
    best = max(reversed(gaps), key=lambda gap: gap.count("\n"))
    return best or " "


@dataclass
class QueryResult:
    """All passages of one query, best first when the call asked to reorder, else in input order.

    ``query_truncated``: the query was longer than the model's query share and ``truncate=True`` cut it.
    ``ranked_by``: the score that ranks the passages, ``"rank"`` (each passage's ``logit``) or the name of a
    list-level head in ``scores`` (e.g. ``"listwise"``, for ``mode="listwise"`` or ``"full"``).
    """

    query: Query
    passages: list[PassageResult]
    query_truncated: bool = False
    ranked_by: str = "rank"

    def ranking_score(self, passage: PassageResult) -> float:
        """The score ``passage`` is ranked by in this result (see ``ranked_by``)."""
        return passage.logit if self.ranked_by == "rank" else passage.scores[self.ranked_by]

    def __iter__(self):
        return iter(self.passages)

    def __len__(self) -> int:
        return len(self.passages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query_id": self.query.id,
            "query": self.query.text,
            "query_truncated": self.query_truncated,
            "passages": [passage.to_dict() for passage in self.passages],
        }
