from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragprune.cli import main
from ragprune.data import data_root

QRELS = "q1 0 a 2\nq1 0 b 0\nq2 0 c 1\nq3 0 d 1\n"
RUN = "q1 Q0 a 1 2.0 t\nq1 Q0 b 2 1.0 t\nq2 Q0 x 1 3.0 t\nq2 Q0 c 2 1.0 t\n"
RUN2 = "q1 Q0 b 1 2.0 t\nq1 Q0 a 2 1.0 t\nq2 Q0 c 1 3.0 t\nq2 Q0 x 2 1.0 t\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"qrels": tmp_path / "qrels.txt", "run": tmp_path / "run.trec", "run2": tmp_path / "run2.trec"}
    for key, text in (("qrels", QRELS), ("run", RUN), ("run2", RUN2)):
        paths[key].write_text(text)
    return paths


def test_default_output_and_warning(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["eval", "--qrels", str(files["qrels"]), "--run", str(files["run"]), "--measures", "RR@10"]) == 0
    )
    out, err = capsys.readouterr()
    assert out == "RR@10\t0.5000\n"  # q1: 1, q2: 1/2, q3 (not in the run): 0
    assert err == (
        f"ragprune eval: warning: 1 judged queries have no results in {files['run']} and count as 0 "
        "in the means (e.g. q3)\n"
    )


def test_per_query_and_json(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["eval", "--qrels", str(files["qrels"]), "--run", str(files["run"]), "--measures", "RR@10"]
    assert main([*args, "--per-query"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "RR@10\t0.5000",
        "RR@10\tq1\t1.0000",
        "RR@10\tq2\t0.5000",
        "RR@10\tq3\t0.0000",
    ]
    assert main([*args, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["measures"] == {"RR@10": 0.5}
    assert (payload["queries"], payload["unranked_queries"]) == (3, ["q3"])


def test_compare(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "eval",
        "--qrels",
        str(files["qrels"]),
        "--run",
        str(files["run"]),
        "--compare",
        str(files["run2"]),
    ]
    assert main([*argv, "--measures", "RR@10", "P@1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "measure\trun\tcompare\tdiff\tp_ttest\tp_randomization\tqueries"
    # RR@10 per query: run (1, 0.5, 0) vs run2 (0.5, 1, 0): no change on average.
    assert lines[1].split("\t")[:4] == ["RR@10", "0.5000", "0.5000", "+0.0000"]
    assert lines[2].split("\t")[:4] == ["P@1", "0.3333", "0.3333", "+0.0000"]


@pytest.mark.parametrize(
    ("extra", "qrels_text", "message"),
    [
        (["--measures", "ndcg@10"], QRELS, "unknown measure 'ndcg@10' (measure not found: ndcg)"),
        ([], "q1 0 a\n", "{qrels}:1: expected 4 columns 'query_id iteration doc_id relevance', got 3"),
        ([], "z9 0 a 1\n", "the run and the qrels share no query ids"),
    ],
)
def test_errors_exit_2_with_one_line(
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    qrels_text: str,
    message: str,
) -> None:
    files["qrels"].write_text(qrels_text)
    assert main(["eval", "--qrels", str(files["qrels"]), "--run", str(files["run"]), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ragprune eval: error: " + message.format(qrels=files["qrels"]))
    assert err.count("\n") == 1


def test_missing_run_file(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    missing = files["run"].parent / "missing.trec"
    assert main(["eval", "--qrels", str(files["qrels"]), "--run", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"ragprune eval: error: run file not found: {missing}; check the path (data root: $RAGPRUNE_DATA)\n"
    )


def _trec_dl_dir() -> Path | None:
    try:
        directory = data_root() / "trec-dl"
    except FileNotFoundError:
        return None
    return directory if directory.is_dir() else None


@pytest.mark.skipif(
    _trec_dl_dir() is None, reason="shared data not found (set RAGPRUNE_DATA to ../shared/data)"
)
@pytest.mark.parametrize(("name", "expected"), [("dl19", "0.5058"), ("dl20", "0.4796")])
def test_bm25_runs_on_real_trec_dl(name: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    directory = _trec_dl_dir() / name
    argv = ["eval", "--qrels", str(directory / "qrels.txt"), "--run", str(directory / "bm25.top100.trec")]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"nDCG@10\t{expected}"
    assert [line.split("\t")[0] for line in lines] == ["nDCG@10", "RR(rel=2)@10", "R@100", "AP(rel=2)"]


def test_compare_json_reports_an_undefined_t_test_as_null(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "qrels.txt").write_text("q1 0 a 1\nq2 0 a 1\n")
    (tmp_path / "a.trec").write_text("q1 Q0 b 1 2 t\nq1 Q0 a 2 1 t\nq2 Q0 b 1 2 t\nq2 Q0 a 2 1 t\n")
    (tmp_path / "b.trec").write_text("q1 Q0 a 1 2 t\nq2 Q0 a 1 2 t\n")
    argv = ["eval", "--qrels", str(tmp_path / "qrels.txt"), "--run", str(tmp_path / "a.trec")]
    assert main([*argv, "--compare", str(tmp_path / "b.trec"), "--measures", "P@1", "--json"]) == 0
    test = json.loads(capsys.readouterr().out)["compare"]["tests"]["P@1"]
    # Both queries gain exactly 1: zero variance, so no t-test; 2 of the 4 sign flips are as extreme.
    assert (test["mean_diff"], test["t_pvalue"], test["randomization_pvalue"]) == (1.0, None, 0.5)
