from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ragprune.data import DataMismatchError, data_root, load_trec_dl


def make_set(
    directory: Path, *, qrels: bool = True, run: str = "1 Q0 p1 1 3.0 bm25\n1 Q0 p2 2 2.0 bm25\n"
) -> Path:
    directory.mkdir(parents=True)
    (directory / "topics.tsv").write_text("1\tfirst query\n2\tsecond query\n")
    if qrels:
        (directory / "qrels.txt").write_text("1 0 p1 3\n1 0 p2 0\n")
    (directory / "bm25.top100.trec").write_text(run)
    with gzip.open(directory / "passages.tsv.gz", "wt") as handle:
        handle.write("p1\tThe first passage.\np2\tThe second passage.\n")
    return directory


def test_load_by_path(tmp_path: Path) -> None:
    data = load_trec_dl(make_set(tmp_path / "dlx"))
    assert data.name == "dlx"
    assert data.qrels == {"1": {"p1": 3, "p2": 0}}
    assert data.run == {"1": {"p1": 3.0, "p2": 2.0}}
    [query], [documents] = data.candidates(depth=1)
    assert query.text == "first query"
    assert [(doc.id, doc.text) for doc in documents] == [("p1", "The first passage.")]


def test_unjudged_set_has_empty_qrels(tmp_path: Path) -> None:
    assert load_trec_dl(make_set(tmp_path / "unjudged", qrels=False)).qrels == {}


def test_load_by_name_under_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_set(tmp_path / "trec-dl" / "dl99")
    monkeypatch.setenv("RAGPRUNE_DATA", str(tmp_path))
    assert load_trec_dl("dl99").topics["2"] == "second query"
    with pytest.raises(FileNotFoundError) as error:
        load_trec_dl("dl98")
    assert str(error.value) == (
        f"unknown trec-dl data set 'dl98': no directory {tmp_path / 'trec-dl' / 'dl98'} (available: dl99)"
    )


def test_run_passage_missing_from_passages(tmp_path: Path) -> None:
    directory = make_set(tmp_path / "bad", run="1 Q0 p1 1 3.0 bm25\n1 Q0 p9 2 2.0 bm25\n")
    with pytest.raises(DataMismatchError) as error:
        load_trec_dl(directory)
    assert str(error.value) == (
        f"1 passage ids in {directory / 'bm25.top100.trec'} are missing from {directory / 'passages.tsv.gz'} "
        "(e.g. p9); use the run, topics and passages of the same set"
    )


def test_run_query_missing_from_topics(tmp_path: Path) -> None:
    directory = make_set(tmp_path / "bad", run="7 Q0 p1 1 3.0 bm25\n")
    with pytest.raises(
        DataMismatchError, match=r"1 query ids in .* are missing from .*topics.tsv \(e.g. 7\)"
    ):
        load_trec_dl(directory)


def _shared_data_available() -> bool:
    try:
        return (data_root() / "trec-dl" / "dl19").is_dir()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(
    not _shared_data_available(), reason="shared data (trec-dl/dl19) not found under the data root"
)
def test_real_dl19_counts() -> None:
    data = load_trec_dl("dl19")
    assert (len(data.topics), sum(map(len, data.qrels.values())), len(data.passages)) == (43, 9260, 11843)
    assert all(len(docs) == 100 for docs in data.run.values())
