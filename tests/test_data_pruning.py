from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragprune.data import (
    DataFormatError,
    PruningContext,
    PruningExample,
    read_pruning_jsonl,
    write_pruning_jsonl,
)

GOOD = {
    "id": "ex1",
    "source": "handmade",
    "question": "Who founded the company?",
    "answers": ["Ada"],
    "type": "bridge",
    "contexts": [
        {
            "title": "Company",
            "sentences": ["It sells tea.", " Ada founded it in 1990."],
            "gold_sentence_ids": [1],
        },
        {"title": "", "sentences": [], "gold_sentence_ids": []},
    ],
}


def write_lines(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_read_keeps_every_field_and_round_trips(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", GOOD)
    [example] = read_pruning_jsonl(path)
    assert example == PruningExample(
        id="ex1",
        source="handmade",
        question="Who founded the company?",
        answers=["Ada"],
        contexts=[
            PruningContext("Company", ["It sells tea.", " Ada founded it in 1990."], [1]),
            PruningContext("", [], []),
        ],
        extra={"type": "bridge"},
    )
    out = tmp_path / "out.jsonl"
    write_pruning_jsonl([example], out)
    assert json.loads(out.read_text()) == GOOD


def _with_context(**changes: object) -> dict:
    context = {**GOOD["contexts"][0], **changes}
    return {**GOOD, "contexts": [context]}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            _with_context(gold_sentence_ids=[2]),
            "contexts[0].gold_sentence_ids has 2, not a sentence index (0..1); "
            "gold ids are 0-based indices into 'sentences'",
        ),
        (
            _with_context(gold_sentence_ids=[1, 1]),
            "contexts[0].gold_sentence_ids repeats an id; list each gold sentence once",
        ),
        (
            _with_context(sentences="one string"),
            "field 'sentences' must be list, got str; write 'sentences' as a JSON array",
        ),
        (
            {**GOOD, "question": " "},
            "empty 'id' or 'question'; give every example a non-empty id and question",
        ),
        (
            {k: v for k, v in GOOD.items() if k != "answers"},
            "missing field 'answers'; add 'answers' to every record",
        ),
        ({**GOOD, "answers": [1]}, "'answers' must hold only strings; write answers as strings"),
    ],
)
def test_invalid_records(tmp_path: Path, record: dict, message: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", record)
    with pytest.raises(DataFormatError) as error:
        read_pruning_jsonl(path)
    assert str(error.value) == f"{path}:1: {message}"


def test_duplicate_example_id(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "dup.jsonl", GOOD, GOOD)
    with pytest.raises(DataFormatError) as error:
        read_pruning_jsonl(path)
    assert str(error.value) == f"{path}:2: duplicate example id 'ex1'; ids must be unique: rename one"
