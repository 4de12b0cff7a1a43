from __future__ import annotations

from pathlib import Path

import pytest

from ragprune.cli import main
from ragprune.data import read_run

MINI = Path(__file__).parent / "fixtures" / "beir-mini"


def test_retrieve_beir_jsonl_with_bm25s(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "runs" / "mini.trec"
    argv = ["retrieve", "--corpus", str(MINI / "corpus.jsonl"), "--queries", str(MINI / "queries.jsonl")]
    assert main([*argv, "--output", str(output), "--k", "2"]) == 0
    run = read_run(output)
    assert list(run["q1"])[0] == "d1"  # aspirin / heart attack
    assert list(run["q2"])[0] == "d3"  # vitamin c / cold
    assert all(len(docs) <= 2 for docs in run.values())
    assert output.read_text().splitlines()[0].endswith(" ragprune-bm25s")
    assert capsys.readouterr().err.startswith("ragprune retrieve: bm25s: 3 documents indexed in ")


def test_retrieve_tsv_inputs_with_bm25_parameters(tmp_path: Path) -> None:
    (tmp_path / "passages.tsv").write_text("p1\tfleas live a year\np2\tthe eiffel tower\n")
    (tmp_path / "topics.tsv").write_text("1\thow long do fleas live\n")
    output = tmp_path / "run.trec"
    argv = ["retrieve", "--corpus", str(tmp_path / "passages.tsv"), "--queries", str(tmp_path / "topics.tsv")]
    assert main([*argv, "--output", str(output), "--k1", "0.9", "--b", "0.4", "--tag", "mine"]) == 0
    assert output.read_text().split()[:3] == ["1", "Q0", "p1"]
    assert output.read_text().split()[5] == "mine"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "bm25s", "--model", "x"], "--model applies to the dense backend, not to bm25s"),
        (
            ["--backend", "dense", "--k1", "1.2"],
            "--k1/--b apply to the BM25 backends (bm25s, lucene), not to dense",
        ),
        (["--k", "0"], "--k must be at least 1, got 0"),
    ],
)
def test_option_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["retrieve", "--corpus", str(MINI / "corpus.jsonl"), "--queries", str(MINI / "queries.jsonl")]
    assert main([*argv, "--output", str(tmp_path / "run.trec"), *extra]) == 2
    assert capsys.readouterr().err == f"ragprune retrieve: error: {message}\n"


def test_missing_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "corpus.jsonl"
    argv = ["retrieve", "--corpus", str(missing), "--queries", str(MINI / "queries.jsonl")]
    assert main([*argv, "--output", str(tmp_path / "run.trec")]) == 2
    assert capsys.readouterr().err == (
        f"ragprune retrieve: error: BEIR corpus file not found: {missing}; "
        "check the path (data root: $RAGPRUNE_DATA)\n"
    )
