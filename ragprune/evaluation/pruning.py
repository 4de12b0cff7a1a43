"""Context-pruning measures against sentence-level gold.

A pruner sees each context as one passage (:func:`context_text` builds it from the data set's
sentences) and returns the character spans it keeps. Scoring does not assume the pruner used the
data set's segmentation: a dataset sentence counts as *kept* when at least half of its
non-whitespace characters lie inside the kept spans.

Per example (all its contexts together):

* **recall**: kept gold sentences / gold sentences;
* **precision**: kept gold sentences / kept sentences (0 when nothing is kept);
* **F1** of the two (0 when both are 0);
* **non-gold dropped**: inside the example's *gold passages* (contexts holding at least one gold
  sentence), the share of the non-gold sentences that were dropped — whether the pruner prunes
  within the passages that matter rather than only filtering out whole irrelevant passages;
* **compression**: share of the context's tokens (whitespace-separated words) removed; a word is kept
  when any of its characters is inside a kept span;
* **answer retention**: whether any reference answer still occurs (case-insensitively) in the kept
  text, where dropped characters are masked out so a match cannot bridge a removed sentence.

The report averages per example (macro). Recall, precision and F1 are averaged over the examples
that have at least one gold sentence; examples without gold (unanswerable questions) have no
defined recall, so they are left out of those three means but still count for compression.
Answer retention is averaged over the examples whose full context contains an answer. Sentences
that are empty or whitespace only are ignored throughout (they can be neither kept nor lost).
Non-gold dropped is averaged over the examples whose gold passages hold at least one non-gold sentence.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import accumulate
from typing import Any

from ragprune.data.pruning import PruningExample
from ragprune.types import Document, Span, json_float

__all__ = [
    "PruningReport",
    "PruningScores",
    "context_text",
    "kept_sentences",
    "score_example",
    "score_pruning",
]

_WORD = re.compile(r"\S+")
_MASK = "\x00"  # stands in for dropped characters in the kept text; occurs in no answer


def context_text(sentences: Sequence[str]) -> tuple[str, list[Span]]:
    """The passage text of a context, and each dataset sentence's span in it (whitespace stripped).

    Sentences are concatenated as they are, with one space added only where two non-whitespace
    characters would otherwise touch (HotpotQA sentences carry their own leading space). An empty or
    whitespace-only sentence gets an empty span at its position.
    """
    text = ""
    spans: list[Span] = []
    for sentence in sentences:
        if text and sentence and not text[-1].isspace() and not sentence[0].isspace():
            text += " "
        stripped = sentence.strip()
        start = len(text) + (sentence.find(stripped) if stripped else len(sentence))
        text += sentence
        spans.append(Span(start, start + len(stripped)))
    return text, spans


def context_documents(example: PruningExample) -> list[Document]:
    """The example's contexts as documents (id: the context's position) with their :func:`context_text`
    and their titles (HotpotQA's distractor setting gives every paragraph's Wikipedia title)."""
    return [Document(str(i), context_text(c.sentences)[0], c.title) for i, c in enumerate(example.contexts)]


def kept_sentences(text: str, sentence_spans: Sequence[Span], kept_spans: Iterable[Span]) -> list[bool]:
    """For each sentence span, whether at least half of its non-whitespace characters are kept.

    Sentences without non-whitespace characters are never kept.
    """
    merged = _merge(kept_spans)
    visible = _visible_prefix(text)
    out = []
    for sentence in sentence_spans:
        total = visible[sentence.end] - visible[sentence.start]
        inside = sum(
            visible[min(kept.end, sentence.end)] - visible[max(kept.start, sentence.start)]
            for kept in _overlapping(merged, sentence)
        )
        out.append(total > 0 and 2 * inside >= total)
    return out


@dataclass(frozen=True)
class PruningScores:
    """Counts and measures of one example; measures are ``None`` where undefined (see module doc)."""

    example_id: str
    sentences: int
    gold_sentences: int
    kept_sentences: int
    kept_gold_sentences: int
    gold_passage_non_gold: int
    gold_passage_non_gold_dropped: int
    tokens: int
    kept_tokens: int
    answer_in_context: bool
    answer_kept: bool | None
    recall: float | None
    precision: float | None
    f1: float | None
    non_gold_dropped: float | None
    compression: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PruningReport:
    """Macro averages over examples, the counts behind them, and the per-example scores.

    A mean over no eligible example is NaN (``null`` in :meth:`to_dict`).
    """

    examples: int
    examples_with_gold: int
    examples_with_answer_in_context: int
    examples_with_gold_passage_non_gold: int
    recall: float
    precision: float
    f1: float
    non_gold_dropped: float
    compression: float
    answer_retention: float
    sentences: int
    gold_sentences: int
    kept_sentences: int
    kept_gold_sentences: int
    gold_passage_non_gold: int
    gold_passage_non_gold_dropped: int
    per_example: list[PruningScores]

    def to_dict(self, per_example: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "examples": self.examples,
            "examples_with_gold": self.examples_with_gold,
            "examples_with_answer_in_context": self.examples_with_answer_in_context,
            "examples_with_gold_passage_non_gold": self.examples_with_gold_passage_non_gold,
            "recall": json_float(self.recall),
            "precision": json_float(self.precision),
            "f1": json_float(self.f1),
            "non_gold_dropped": json_float(self.non_gold_dropped),
            "compression": json_float(self.compression),
            "answer_retention": json_float(self.answer_retention),
            "sentences": self.sentences,
            "gold_sentences": self.gold_sentences,
            "kept_sentences": self.kept_sentences,
            "kept_gold_sentences": self.kept_gold_sentences,
            "gold_passage_non_gold": self.gold_passage_non_gold,
            "gold_passage_non_gold_dropped": self.gold_passage_non_gold_dropped,
        }
        if per_example:
            out["per_example"] = [scores.to_dict() for scores in self.per_example]
        return out


def score_example(example: PruningExample, kept_spans: Sequence[Sequence[Span]]) -> PruningScores:
    """Score one example; ``kept_spans[j]`` are offsets into ``context_text`` of context ``j``."""
    if len(kept_spans) != len(example.contexts):
        raise ValueError(
            f"example {example.id!r}: kept spans for {len(kept_spans)} contexts, but it has "
            f"{len(example.contexts)}; pass one list of spans per context, in order (empty list = drop all)"
        )
    sentences = gold = kept = kept_gold = tokens = kept_tokens = 0
    passage_non_gold = passage_non_gold_dropped = 0
    full_texts: list[str] = []
    kept_texts: list[str] = []
    for index, (context, spans) in enumerate(zip(example.contexts, kept_spans, strict=True)):
        text, sentence_spans = context_text(context.sentences)
        _check_spans(spans, len(text), example.id, index)
        merged = _merge(spans)
        gold_ids = set(context.gold_sentence_ids)
        flags = kept_sentences(text, sentence_spans, merged)
        visible = [i for i, span in enumerate(sentence_spans) if span]
        sentences += len(visible)
        gold += sum(i in gold_ids for i in visible)
        kept += sum(flags[i] for i in visible)
        kept_gold += sum(flags[i] for i in visible if i in gold_ids)
        if any(i in gold_ids for i in visible):
            passage_non_gold += sum(i not in gold_ids for i in visible)
            passage_non_gold_dropped += sum(not flags[i] for i in visible if i not in gold_ids)
        words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        tokens += len(words)
        kept_tokens += sum(1 for start, end in words if _overlapping(merged, Span(start, end)))
        full_texts.append(text)
        kept_texts.append(_masked(text, merged))

    answers = [answer.strip().casefold() for answer in example.answers if answer.strip()]
    full = "\n".join(full_texts).casefold()
    answer_in_context = any(answer in full for answer in answers)
    kept_text = "\n".join(kept_texts).casefold()
    recall = kept_gold / gold if gold else None
    precision = (kept_gold / kept if kept else 0.0) if gold else None
    f1 = None
    if recall is not None and precision is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PruningScores(
        example_id=example.id,
        sentences=sentences,
        gold_sentences=gold,
        kept_sentences=kept,
        kept_gold_sentences=kept_gold,
        gold_passage_non_gold=passage_non_gold,
        gold_passage_non_gold_dropped=passage_non_gold_dropped,
        tokens=tokens,
        kept_tokens=kept_tokens,
        answer_in_context=answer_in_context,
        answer_kept=any(answer in kept_text for answer in answers) if answer_in_context else None,
        recall=recall,
        precision=precision,
        f1=f1,
        non_gold_dropped=passage_non_gold_dropped / passage_non_gold if passage_non_gold else None,
        compression=1 - kept_tokens / tokens if tokens else None,
    )


def score_pruning(
    examples: Sequence[PruningExample], kept_spans_per_context: Sequence[Sequence[Sequence[Span]]]
) -> PruningReport:
    """Score a pruner's output on a data set.

    ``kept_spans_per_context[i][j]`` holds the spans kept in context ``j`` of ``examples[i]``, as
    character offsets into ``context_text(examples[i].contexts[j].sentences)[0]``.
    """
    if len(kept_spans_per_context) != len(examples):
        raise ValueError(
            f"kept spans for {len(kept_spans_per_context)} examples, but {len(examples)} examples were "
            "given; pass one entry per example, in the same order"
        )
    scores = [
        score_example(example, kept) for example, kept in zip(examples, kept_spans_per_context, strict=True)
    ]
    with_gold = [s for s in scores if s.gold_sentences]
    with_answer = [s for s in scores if s.answer_in_context]
    return PruningReport(
        examples=len(scores),
        examples_with_gold=len(with_gold),
        examples_with_answer_in_context=len(with_answer),
        examples_with_gold_passage_non_gold=sum(1 for s in scores if s.gold_passage_non_gold),
        recall=_mean(s.recall for s in with_gold),
        precision=_mean(s.precision for s in with_gold),
        f1=_mean(s.f1 for s in with_gold),
        non_gold_dropped=_mean(s.non_gold_dropped for s in scores),
        compression=_mean(s.compression for s in scores if s.compression is not None),
        answer_retention=_mean(float(bool(s.answer_kept)) for s in with_answer),
        sentences=sum(s.sentences for s in scores),
        gold_sentences=sum(s.gold_sentences for s in scores),
        kept_sentences=sum(s.kept_sentences for s in scores),
        kept_gold_sentences=sum(s.kept_gold_sentences for s in scores),
        gold_passage_non_gold=sum(s.gold_passage_non_gold for s in scores),
        gold_passage_non_gold_dropped=sum(s.gold_passage_non_gold_dropped for s in scores),
        per_example=scores,
    )


def _mean(values: Iterable[float | None]) -> float:
    items = [v for v in values if v is not None]
    return sum(items) / len(items) if items else float("nan")


def _check_spans(spans: Iterable[Span], length: int, example_id: str, index: int) -> None:
    for span in spans:
        if not isinstance(span, Span):
            raise TypeError(f"example {example_id!r}, context {index}: expected Span objects, got {span!r}")
        if span.end > length:
            raise ValueError(
                f"example {example_id!r}, context {index}: span ({span.start}, {span.end}) ends past the "
                f"context text ({length} chars); spans must be offsets into context_text(sentences)[0]"
            )


def _merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted, disjoint, non-empty spans covering the same characters."""
    merged: list[Span] = []
    for span in sorted(spans):
        if not span:
            continue
        if merged and span.start <= merged[-1].end:
            if span.end > merged[-1].end:
                merged[-1] = Span(merged[-1].start, span.end)
        else:
            merged.append(span)
    return merged


def _overlapping(merged: list[Span], span: Span) -> list[Span]:
    """The merged spans that share at least one character with ``span``."""
    first = bisect.bisect_right(merged, span.start, key=lambda s: s.end)
    out = []
    for candidate in merged[first:]:
        if candidate.start >= span.end:
            break
        out.append(candidate)
    return out


def _visible_prefix(text: str) -> list[int]:
    """``out[i]`` = number of non-whitespace characters in ``text[:i]``."""
    return list(accumulate((not char.isspace() for char in text), initial=0))


def _masked(text: str, merged: list[Span]) -> str:
    """``text`` with every non-whitespace character outside the kept spans replaced by a mask."""
    pieces = []
    position = 0
    for span in merged:
        pieces.append(_WORD.sub(lambda m: _MASK * len(m.group()), text[position : span.start]))
        pieces.append(span.slice(text))
        position = span.end
    pieces.append(_WORD.sub(lambda m: _MASK * len(m.group()), text[position:]))
    return "".join(pieces)
