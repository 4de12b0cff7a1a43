"""Sentence-level context-pruning data (JSON lines).

One record per question::

    {"id", "source", "question", "answers": [str],
     "contexts": [{"title", "sentences": [str], "gold_sentence_ids": [int]}]}

Gold ids index ``sentences`` from 0. Any other field (e.g. HotpotQA's ``type``) is kept in ``extra`` and
written back by :func:`write_pruning_jsonl`, so a read/write round trip loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragprune.data.errors import DataFormatError
from ragprune.data.files import field_of, numbered_json_objects

_EXAMPLE_KEYS = ("id", "source", "question", "answers", "contexts")
_CONTEXT_KEYS = ("title", "sentences", "gold_sentence_ids")


@dataclass(frozen=True)
class PruningContext:
    """One passage as a list of sentences, with the indices of the gold (answer-bearing) sentences."""

    title: str
    sentences: list[str]
    gold_sentence_ids: list[int]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "sentences": self.sentences,
            "gold_sentence_ids": self.gold_sentence_ids,
            **self.extra,
        }


@dataclass(frozen=True)
class PruningExample:
    """A question with its contexts; ``extra`` holds any record fields beyond the schema."""

    id: str
    source: str
    question: str
    answers: list[str]
    contexts: list[PruningContext]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "question": self.question,
            "answers": self.answers,
            "contexts": [context.to_dict() for context in self.contexts],
            **self.extra,
        }


def read_pruning_jsonl(path: str | Path) -> list[PruningExample]:
    """All examples of a pruning JSONL file, in file order, validated against the schema."""
    examples: list[PruningExample] = []
    seen: set[str] = set()
    for lineno, record in numbered_json_objects(path, "pruning"):
        example = _parse_example(record, path, lineno)
        if example.id in seen:
            raise DataFormatError.at(
                path, lineno, f"duplicate example id {example.id!r}", "ids must be unique: rename one"
            )
        seen.add(example.id)
        examples.append(example)
    return examples


def write_pruning_jsonl(examples: Iterable[PruningExample], path: str | Path) -> None:
    """Write examples as JSON lines (UTF-8, non-ASCII kept), readable by :func:`read_pruning_jsonl`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")


def _parse_example(record: dict[str, Any], path: str | Path, lineno: int) -> PruningExample:
    example_id = field_of(record, "id", str, path, lineno)
    question = field_of(record, "question", str, path, lineno)
    if not example_id.strip() or not question.strip():
        raise DataFormatError.at(
            path, lineno, "empty 'id' or 'question'", "give every example a non-empty id and question"
        )
    answers = field_of(record, "answers", list, path, lineno)
    if not all(isinstance(answer, str) for answer in answers):
        raise DataFormatError.at(path, lineno, "'answers' must hold only strings", "write answers as strings")
    raw_contexts = field_of(record, "contexts", list, path, lineno)
    contexts = [_parse_context(raw, index, path, lineno) for index, raw in enumerate(raw_contexts)]
    return PruningExample(
        id=example_id,
        source=field_of(record, "source", str, path, lineno),
        question=question,
        answers=answers,
        contexts=contexts,
        extra={k: v for k, v in record.items() if k not in _EXAMPLE_KEYS},
    )


def _parse_context(raw: Any, index: int, path: str | Path, lineno: int) -> PruningContext:
    where = f"contexts[{index}]"
    if not isinstance(raw, dict):
        raise DataFormatError.at(path, lineno, f"{where} is not an object", "write contexts as objects")
    sentences = field_of(raw, "sentences", list, path, lineno)
    if not all(isinstance(sentence, str) for sentence in sentences):
        raise DataFormatError.at(
            path, lineno, f"{where}.sentences must hold only strings", "write sentences as strings"
        )
    gold = field_of(raw, "gold_sentence_ids", list, path, lineno)
    for gold_id in gold:
        if isinstance(gold_id, bool) or not isinstance(gold_id, int) or not 0 <= gold_id < len(sentences):
            raise DataFormatError.at(
                path,
                lineno,
                f"{where}.gold_sentence_ids has {gold_id!r}, not a sentence index (0..{len(sentences) - 1})",
                "gold ids are 0-based indices into 'sentences'",
            )
    if len(set(gold)) != len(gold):
        raise DataFormatError.at(
            path, lineno, f"{where}.gold_sentence_ids repeats an id", "list each gold sentence once"
        )
    return PruningContext(
        title=field_of(raw, "title", str, path, lineno, default=""),
        sentences=sentences,
        gold_sentence_ids=gold,
        extra={k: v for k, v in raw.items() if k not in _CONTEXT_KEYS},
    )
