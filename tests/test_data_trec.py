from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ragprune.data import (
    DataFormatError,
    DataMismatchError,
    common_queries,
    read_passages,
    read_qrels,
    read_run,
    read_topics,
    write_run,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_topics_keeps_text_verbatim_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "topics.tsv", "1\twhat is a flea\r\n\n2\t  leading space\tand a tab\n")
    assert read_topics(path) == {"1": "what is a flea", "2": "  leading space\tand a tab"}


def test_topics_line_without_tab(tmp_path: Path) -> None:
    path = write(tmp_path / "topics.tsv", "1\tok\n2 no tab here\n")
    with pytest.raises(DataFormatError) as error:
        read_topics(path)
    assert str(error.value) == (
        f"{path}:2: expected 'query id<TAB>text', got '2 no tab here'; "
        "separate the id from the text with a tab character"
    )


def test_topics_empty_text(tmp_path: Path) -> None:
    path = write(tmp_path / "topics.tsv", "1\t   \n")
    with pytest.raises(DataFormatError) as error:
        read_topics(path)
    assert str(error.value) == f"{path}:1: empty text for query id '1'; add the text or remove the line"


def test_passages_duplicate_id(tmp_path: Path) -> None:
    path = write(tmp_path / "passages.tsv", "7\tone\n8\ttwo\n7\tthree\n")
    with pytest.raises(DataFormatError) as error:
        read_passages(path)
    assert str(error.value) == f"{path}:3: duplicate passage id '7'; ids must be unique: remove or rename one"


def test_passages_read_gzip_transparently(tmp_path: Path) -> None:
    path = tmp_path / "passages.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("p1\tCafé au lait.\np2\tSecond passage.\n")
    assert read_passages(path) == {"p1": "Café au lait.", "p2": "Second passage."}


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "qrels.txt"
    with pytest.raises(FileNotFoundError) as error:
        read_qrels(path)
    assert str(error.value) == f"qrels file not found: {path}; check the path (data root: $RAGPRUNE_DATA)"


def test_read_qrels(tmp_path: Path) -> None:
    path = write(tmp_path / "qrels.txt", "1 0 a 2\n1 0 b 0\n2 Q0 a 1\n")
    assert read_qrels(path) == {"1": {"a": 2, "b": 0}, "2": {"a": 1}}


def test_qrels_wrong_column_count(tmp_path: Path) -> None:
    path = write(tmp_path / "qrels.txt", "1 0 a 2\n1 a 2\n")
    with pytest.raises(DataFormatError) as error:
        read_qrels(path)
    assert str(error.value) == (
        f"{path}:2: expected 4 columns 'query_id iteration doc_id relevance', got 3: '1 a 2'; "
        "use TREC qrels format, e.g. '19335 0 1017759 2'"
    )


def test_qrels_non_integer_relevance(tmp_path: Path) -> None:
    path = write(tmp_path / "qrels.txt", "1 0 a high\n")
    with pytest.raises(DataFormatError) as error:
        read_qrels(path)
    assert str(error.value) == (
        f"{path}:1: relevance 'high' is not an integer; write relevance grades as integers (e.g. 0-3)"
    )


def test_qrels_duplicate_pair(tmp_path: Path) -> None:
    path = write(tmp_path / "qrels.txt", "1 0 a 2\n1 0 a 1\n")
    with pytest.raises(DataFormatError) as error:
        read_qrels(path)
    assert str(error.value) == (
        f"{path}:2: duplicate judgement for query '1', doc 'a'; keep one line per (query, doc) pair"
    )


def test_read_run(tmp_path: Path) -> None:
    path = write(tmp_path / "run.trec", "1 Q0 a 1 2.5 bm25\n1 Q0 b 2 -1e-3 bm25\n")
    assert read_run(path) == {"1": {"a": 2.5, "b": -0.001}}


def test_run_wrong_column_count(tmp_path: Path) -> None:
    path = write(tmp_path / "run.trec", "1 Q0 a 1 2.5\n")
    with pytest.raises(DataFormatError) as error:
        read_run(path)
    assert str(error.value) == (
        f"{path}:1: expected 6 columns 'query_id Q0 doc_id rank score tag', got 5: '1 Q0 a 1 2.5'; "
        "use TREC run format, e.g. '264014 Q0 5611210 1 15.78 bm25'"
    )


def test_run_bad_score(tmp_path: Path) -> None:
    path = write(tmp_path / "run.trec", "1 Q0 a 1 high bm25\n")
    with pytest.raises(DataFormatError) as error:
        read_run(path)
    assert str(error.value) == (
        f"{path}:1: rank '1' must be an integer and score 'high' a number; columns 4 and 5 are rank and score"
    )


def test_run_duplicate_doc(tmp_path: Path) -> None:
    path = write(tmp_path / "run.trec", "1 Q0 a 1 2 t\n1 Q0 a 2 1 t\n")
    with pytest.raises(DataFormatError, match="doc 'a' appears twice for query '1'"):
        read_run(path)


def test_write_run_orders_by_score_then_doc_id_and_round_trips(tmp_path: Path) -> None:
    run = {"q2": {"x": 1.0}, "q1": {"b": 0.5, "a": 0.5, "c": 0.1 + 0.2, "d": -3.0}}
    path = tmp_path / "out" / "run.trec"
    write_run(run, path, tag="mine")
    assert path.read_text().splitlines() == [
        "q1 Q0 a 1 0.5 mine",
        "q1 Q0 b 2 0.5 mine",
        "q1 Q0 c 3 0.30000000000000004 mine",
        "q1 Q0 d 4 -3.0 mine",
        "q2 Q0 x 1 1.0 mine",
    ]
    assert read_run(path) == run


@pytest.mark.parametrize(
    ("run", "tag", "message"),
    [
        ({"q": {"a": 1.0}}, "two words", "run tag 'two words' must be a non-empty string without whitespace"),
        ({"q": {"a b": 1.0}}, "t", "doc id 'a b' cannot go in a TREC run: use non-empty ids without spaces"),
        ({"q": {"a": float("nan")}}, "t", "score nan of query 'q', doc 'a' is not finite"),
    ],
)
def test_write_run_rejects_unwritable_values(tmp_path: Path, run: dict, tag: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        write_run(run, tmp_path / "run.trec", tag=tag)
    assert str(error.value) == message


def test_common_queries() -> None:
    assert common_queries({"1": {}, "2": {}}, {"2": {}, "3": {}}) == ["2"]


def test_no_common_queries_is_an_error() -> None:
    with pytest.raises(DataMismatchError) as error:
        common_queries({"1": {"a": 1}, "2": {"a": 0}}, {"9": {"a": 1.0}})
    assert str(error.value) == (
        "the run and the qrels share no query ids (run: 1 queries, e.g. 9; qrels: 2 queries, e.g. 1, 2); "
        "evaluate the run against the qrels of the topics it was made for"
    )


def test_bom_is_dropped_and_bad_encodings_are_reported(tmp_path: Path) -> None:
    bom = tmp_path / "bom.tsv"
    bom.write_bytes("\ufeff1\tquery\n".encode())
    assert read_topics(bom) == {"1": "query"}
    latin = tmp_path / "latin1.tsv"
    latin.write_bytes("1\tok\n2\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFormatError) as error:
        read_topics(latin)
    assert (
        str(error.value)
        == f"{latin}:2: not UTF-8 text (invalid continuation byte); re-encode the file as UTF-8"
    )
    fake_gz = tmp_path / "passages.tsv.gz"
    fake_gz.write_text("p1\tnot compressed\n")
    with pytest.raises(
        DataFormatError, match=r"passages.tsv.gz: not a valid gzip file .*drop the .gz suffix"
    ):
        read_passages(fake_gz)
