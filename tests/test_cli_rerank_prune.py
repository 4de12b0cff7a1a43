"""``ragprune rerank`` (TREC in, TREC out) and ``ragprune prune`` (JSONL in and out) with the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sample_texts import QUERY, TEXTS

from ragprune.cli import main
from ragprune.data import read_run


@pytest.fixture()
def trec_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "topics": "q1\thow long do fleas live\nq2\twhere is the eiffel tower\n",
        "passages": "".join(f"p{i}\t{text}\n" for i, text in enumerate(TEXTS)),
        "run": "".join(
            f"{qid} Q0 p{i} {i + 1} {10 - i} bm25\n" for qid in ("q1", "q2") for i in range(len(TEXTS))
        ),
        "qrels": "q1 0 p0 2\nq2 0 p1 2\n",
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.txt"
        paths[name].write_text(content)
    return paths


def _rerank(files: dict[str, Path], tmp_path: Path, model: Path, *extra: str) -> int:
    return main(
        [
            "rerank",
            "--queries",
            str(files["topics"]),
            "--run",
            str(files["run"]),
            "--passages",
            str(files["passages"]),
            "--output",
            str(tmp_path / "out.trec"),
            "--model",
            str(model),
            "--device",
            "cpu",
            *extra,
        ]
    )


def test_rerank_writes_a_trec_run_keeping_every_document(trec_files, tmp_path, tiny_model_dir, capsys):
    pruned = tmp_path / "pruned.jsonl"
    code = _rerank(
        trec_files,
        tmp_path,
        tiny_model_dir,
        "--top-k",
        "3",
        "--qrels",
        str(trec_files["qrels"]),
        "--pruned-output",
        str(pruned),
    )
    assert code == 0
    out = read_run(tmp_path / "out.trec")
    assert {qid: sorted(docs) for qid, docs in out.items()} == {
        q: ["p0", "p1", "p2", "p3"] for q in ("q1", "q2")
    }
    for docs in out.values():  # the document below --top-k stays last
        assert min(docs, key=docs.get) == "p3"
    lines = [json.loads(line) for line in pruned.read_text().splitlines()]
    assert [line["query_id"] for line in lines] == ["q1", "q2"]
    assert all(len(line["passages"]) == 3 for line in lines)
    printed = capsys.readouterr().out
    assert "pairs\t6" in printed and "nDCG@10\t" in printed and "mean_compression\t" in printed


def test_rerank_names_unknown_documents(trec_files, tmp_path, tiny_model_dir, capsys):
    trec_files["run"].write_text("q1 Q0 p9 1 3.0 bm25\n")
    assert _rerank(trec_files, tmp_path, tiny_model_dir) == 2
    assert "not in the passages/corpus file" in capsys.readouterr().err


def test_rerank_names_queries_without_text(trec_files, tmp_path, tiny_model_dir, capsys):
    trec_files["run"].write_text("q7 Q0 p1 1 3.0 bm25\n")
    assert _rerank(trec_files, tmp_path, tiny_model_dir) == 2
    assert "have no text in the queries file" in capsys.readouterr().err


def test_prune_reads_and_writes_jsonl(tmp_path, tiny_model_dir):
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"id": "a", "query": QUERY, "passages": TEXTS, "tag": "kept"})
        + "\n"
        + json.dumps({"query": QUERY, "passages": [{"id": "x", "text": TEXTS[0], "metadata": {"u": 1}}]})
        + "\n"
    )
    target = tmp_path / "out.jsonl"
    argv = [
        "prune",
        "--input",
        str(source),
        "--output",
        str(target),
        "--model",
        str(tiny_model_dir),
        "--device",
        "cpu",
        "--threshold",
        "0",
        "--keep-order",
    ]
    assert main(argv) == 0
    first, second = [json.loads(line) for line in target.read_text().splitlines()]
    assert first["query_id"] == "a" and first["tag"] == "kept"
    assert [p["text"] for p in first["passages"]] == TEXTS
    assert all(p["pruned_text"] == p["text"] for p in first["passages"])
    assert second["passages"][0]["id"] == "x" and second["passages"][0]["metadata"] == {"u": 1}


def test_prune_rejects_lines_without_passages(tmp_path, tiny_model_dir, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"query": QUERY}) + "\n")
    argv = [
        "prune",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--model",
        str(tiny_model_dir),
    ]
    assert main(argv) == 2
    assert f"{source}:1: each line needs a string 'query' and a list 'passages'" in capsys.readouterr().err


def test_prune_hops_two_matches_process(tmp_path, tiny_model_dir, pruner):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"query": QUERY, "passages": TEXTS}) + "\n")
    target = tmp_path / "out.jsonl"
    argv = ["prune", "--input", str(source), "--output", str(target), "--model", str(tiny_model_dir)]
    assert main([*argv, "--device", "cpu", "--keep-order", "--threshold", "0.5", "--hops", "2"]) == 0
    written = json.loads(target.read_text())
    expected = pruner.process(QUERY, TEXTS, threshold=0.5, reorder=False, hops=2)
    assert [[s["score"] for s in p["sentences"]] for p in written["passages"]] == [
        [s.score for s in p.sentences] for p in expected
    ]
    with pytest.raises(SystemExit):
        main([*argv, "--hops", "3"])
