from __future__ import annotations

from pathlib import Path

import pytest

from ragprune.data import (
    DataFormatError,
    DataMismatchError,
    load_beir,
    read_any_qrels,
    read_beir_corpus,
    read_beir_qrels,
    read_corpus,
    read_queries,
)
from ragprune.types import Document

MINI = Path(__file__).parent / "fixtures" / "beir-mini"


def test_load_beir_keeps_title_and_metadata_and_filters_queries_to_the_split() -> None:
    data = load_beir(MINI)
    assert data.name == "beir-mini"
    assert data.corpus["d1"] == Document(
        "d1", "Aspirin reduces the risk of heart attack in adults.", "Aspirin", {"year": 2001}
    )
    assert data.corpus["d1"].metadata == {"year": 2001}
    assert data.queries == {"q1": "does aspirin prevent heart attacks", "q2": "vitamin c and colds"}
    assert data.query_metadata == {"q1": {"source": "handmade"}}
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d3": 1}}
    assert load_beir(MINI, split="train").queries == {"q3": "a query judged only in the train split"}


def test_unknown_split_lists_the_available_ones() -> None:
    with pytest.raises(FileNotFoundError) as error:
        load_beir(MINI, split="dev")
    assert str(error.value) == (
        f"no qrels for split 'dev': {MINI / 'qrels' / 'dev.tsv'} does not exist "
        "(available splits: test, train)"
    )


def test_qrels_doc_missing_from_corpus(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "y"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    with pytest.raises(DataMismatchError) as error:
        load_beir(tmp_path)
    assert str(error.value) == (
        f"1 corpus ids in {tmp_path / 'qrels' / 'test.tsv'} are not in {tmp_path / 'corpus.jsonl'} "
        "(e.g. d2); use the qrels and corpus of the same data set"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"_id": "d1", "text": "a"',
            "not valid JSON (Expecting ',' delimiter, column 26); write one JSON object per line",
        ),
        ('["d1", "a"]', "expected a JSON object, got list; write one JSON object per line"),
        (
            '{"title": "t", "text": "a"}',
            "missing or invalid '_id' (None); give every record a non-empty string '_id'",
        ),
        ('{"_id": "d1", "title": "t"}', "missing field 'text'; add 'text' to every record"),
        ('{"_id": "d1", "text": 5}', "field 'text' must be str, got int; write 'text' as a JSON string"),
        (
            '{"_id": "d1", "text": " ", "title": ""}',
            "document 'd1' has empty title and text; add text or remove the record",
        ),
        ('{"_id": "d0", "text": "b"}', "duplicate _id 'd0'; ids must be unique: remove or rename one"),
    ],
)
def test_corpus_errors(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "d0", "text": "fine"}\n' + line + "\n")
    with pytest.raises(DataFormatError) as error:
        read_beir_corpus(path)
    assert str(error.value) == f"{path}:2: {message}"


def test_qrels_errors(tmp_path: Path) -> None:
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1 d1 1\n")
    with pytest.raises(DataFormatError) as error:
        read_beir_qrels(path)
    assert str(error.value) == (
        f"{path}:2: expected 3 tab-separated columns 'query-id corpus-id score', got 1: 'q1 d1 1'; "
        "use BEIR qrels format (header 'query-id<TAB>corpus-id<TAB>score')"
    )
    path.write_text("q1\td1\t0.5\n")
    with pytest.raises(DataFormatError, match="1: score '0.5' is not an integer"):
        read_beir_qrels(path)


def test_read_corpus_and_queries_dispatch_on_the_file_name(tmp_path: Path) -> None:
    tsv = tmp_path / "passages.tsv"
    tsv.write_text("p1\tSome text.\n")
    assert read_corpus(tsv) == {"p1": Document("p1", "Some text.")}
    assert read_corpus(MINI / "corpus.jsonl")["d2"].title == "Statins"
    assert read_queries(MINI / "queries.jsonl")["q3"] == "a query judged only in the train split"
    topics = tmp_path / "topics.tsv"
    topics.write_text("1\tq\n")
    assert read_queries(topics) == {"1": "q"}


def test_read_any_qrels_detects_beir_and_trec_layouts(tmp_path: Path) -> None:
    trec = tmp_path / "qrels.txt"
    trec.write_text("q1 0 d1 1\nq2 0 d3 1\n")
    assert (
        read_any_qrels(MINI / "qrels" / "test.tsv")
        == read_any_qrels(trec)
        == {"q1": {"d1": 1}, "q2": {"d3": 1}}
    )
