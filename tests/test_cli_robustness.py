"""Issue 14, fault 7 on the command line: stdin/stdout, BEIR qrels, bounded options, one-line errors."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sample_texts import QUERY, TEXTS

from ragprune import __version__
from ragprune.cli import main


@pytest.fixture()
def trec_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "topics": "q1\thow long do fleas live\nq2\twhere is the eiffel tower\n",
        "passages": "".join(f"p{i}\t{text}\n" for i, text in enumerate(TEXTS)),
        "run": "".join(f"{qid} Q0 p{i} {i + 1} {10 - i} bm25\n" for qid in ("q1", "q2") for i in range(4)),
        # BEIR qrels (header, tabs, binary), judging a third query the run does not hold
        "qrels": "query-id\tcorpus-id\tscore\nq1\tp0\t1\nq2\tp1\t1\nq3\tp2\t1\n",
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.txt"
        paths[name].write_text(content)
    return paths


def rerank_argv(files: dict[str, Path], output: str, model: Path, *extra: str) -> list[str]:
    return [
        "rerank",
        "--queries",
        str(files["topics"]),
        "--run",
        str(files["run"]),
        "--passages",
        str(files["passages"]),
        "--output",
        output,
        "--model",
        str(model),
        "--device",
        "cpu",
        *extra,
    ]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ragprune {__version__}"


def test_rerank_takes_beir_qrels_and_says_which_queries_it_averages(
    trec_files, tmp_path, tiny_model_dir, capsys
):
    argv = rerank_argv(
        trec_files, str(tmp_path / "out.trec"), tiny_model_dir, "--qrels", str(trec_files["qrels"])
    )
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "the run holds 2 of the 3 queries judged" in captured.err
    assert "means over those 2 queries only" in captured.err
    assert "RR(rel=2)@10" in captured.err and "binary qrels" in captured.err  # 0 whatever the run
    assert "queries\t2\t" in captured.out and "nDCG@10\t" in captured.out


def test_rerank_output_dash_writes_the_run_to_stdout(trec_files, tiny_model_dir, capsys):
    assert main(rerank_argv(trec_files, "-", tiny_model_dir)) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 8 and all(len(line.split()) == 6 for line in lines)  # only the run
    assert "pairs\t8" in captured.err  # the summary moved to stderr
    assert not Path("-").exists()


def test_missing_output_folder_is_an_error_naming_the_fix(trec_files, tmp_path, tiny_model_dir, capsys):
    target = tmp_path / "no" / "such" / "out.trec"
    assert main(rerank_argv(trec_files, str(target), tiny_model_dir)) == 2
    err = capsys.readouterr().err
    assert f"mkdir -p {target.parent}" in err and len(err.strip().splitlines()) == 1
    assert not target.parent.exists()


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "high"])
def test_thresholds_outside_the_unit_interval_are_refused(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prune", "--input", "x", "--output", str(tmp_path / "o"), f"--threshold={value}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--threshold" in err and ("outside [0, 1]" in err or "not a number" in err)


@pytest.mark.parametrize(
    ("device", "message"),
    [("gpu7", "is not a device name"), ("cuda:0", "CUDA"), ("mps", "runs on cpu or cuda")],
)
def test_bad_device_is_one_line(device, message, tmp_path, tiny_model_dir, capsys):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        device = f"cuda:{torch.cuda.device_count()}"
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"query": QUERY, "passages": TEXTS}) + "\n")
    argv = [
        "prune",
        "--input",
        str(source),
        "--output",
        "-",
        "--model",
        str(tiny_model_dir),
        "--device",
        device,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_port_is_one_line(tiny_model_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--port", "70000"])
    assert exit_info.value.code == 2 and "not a port number" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(tiny_model_dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "choose another --port" in err
    assert len(err.strip().splitlines()) == 1


def test_prune_reads_stdin_and_writes_stdout(tiny_model_dir, monkeypatch, capsys):
    lines = [
        {"query": QUERY, "passages": TEXTS[:2], "id": None},  # null id: the line number, never "None"
        {"query": QUERY, "passages": [{"id": "x", "text": TEXTS[0]}], "id": 7},
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    argv = ["prune", "--input", "-", "--output", "-", "--model", str(tiny_model_dir), "--device", "cpu"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    first, second = [json.loads(line) for line in captured.out.splitlines()]
    assert first["query_id"] == "0" and second["query_id"] == "7"
    assert len(first["passages"]) == 2 and second["passages"][0]["id"] == "x"
    assert "wrote 2 queries to standard output" in captured.err


def test_prune_refuses_ids_that_are_not_strings_or_integers(tmp_path, tiny_model_dir, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"query": QUERY, "passages": TEXTS, "id": [1]}) + "\n")
    argv = ["prune", "--input", str(source), "--output", "-", "--model", str(tiny_model_dir)]
    assert main(argv) == 2
    assert f"{source}:1: 'id' is list" in capsys.readouterr().err


def test_passage_null_id_is_a_missing_id(tmp_path, tiny_model_dir, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"query": QUERY, "passages": [{"id": None, "text": TEXTS[0]}]}) + "\n")
    argv = [
        "prune",
        "--input",
        str(source),
        "--output",
        "-",
        "--model",
        str(tiny_model_dir),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    (passage,) = json.loads(capsys.readouterr().out)["passages"]
    assert passage["id"] == "0"


def test_lone_surrogates_give_output_or_a_one_line_error(tmp_path, tiny_model_dir, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"query": "fleas \\ud800", "passages": ["x \\ud800 y. Fleas live a year.", "\\udc00"]}\n'
    )
    argv = [
        "prune",
        "--input",
        str(source),
        "--output",
        "-",
        "--model",
        str(tiny_model_dir),
        "--device",
        "cpu",
    ]
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if code == 0:
        (line,) = captured.out.splitlines()
        assert json.loads(line)["passages"]  # valid JSON, the text kept (escaped where it must be)
    else:
        assert code == 2 and len(captured.err.strip().splitlines()) == 1 and "surrogate" in captured.err


def test_no_sequence_length_warning_on_long_inputs(tmp_path, tiny_model_dir, capfd, caplog):
    """transformers warns once per tokenizer when it sees a text over 512 tokens; ragprune chunks long text
    on purpose, so the warning is noise (issue 14, fault 7)."""
    long_text = "Fleas live up to a year. " * 200
    record = {"query": QUERY, "passages": [long_text, {"text": long_text, "title": "Fleas " * 600}]}
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(record) + "\n")
    argv = [
        "prune",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--model",
        str(tiny_model_dir),
    ]
    assert main([*argv, "--device", "cpu"]) == 0
    assert "sequence length" not in capfd.readouterr().err + caplog.text


TEXT = st.text(st.characters(categories=["L", "M", "N", "P", "S", "Z", "C"]), max_size=30)  # C: Cs, Cc, Cf


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=TEXT, passages=st.lists(TEXT | st.fixed_dictionaries({"text": TEXT, "title": TEXT}), max_size=3))
@example(query="fleas \ud800", passages=["x \udc00 y", {"text": "\u200b", "title": "\ufeff"}])
def test_random_unicode_through_prune_never_escapes(pruner, monkeypatch, capsys, tmp_path, query, passages):
    """Surrogates, controls, format characters, mixed scripts: output or a one-line error, no traceback."""
    monkeypatch.setattr("ragprune.cli.prune.load_pruner", lambda args: pruner)
    source = tmp_path / "random.jsonl"
    source.write_text(json.dumps({"query": query, "passages": passages}) + "\n")
    code = main(["prune", "--input", str(source), "--output", "-"])
    captured = capsys.readouterr()
    if code == 0:
        (line,) = captured.out.splitlines()
        assert len(json.loads(line)["passages"]) == len(passages)
    else:
        assert code == 2 and len(captured.err.strip().splitlines()) == 1


def test_truncate_query_cuts_a_long_query_and_says_so(tmp_path, tiny_model_dir, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"query": "fleas " * 40, "passages": TEXTS[:2]}) + "\n")
    argv = [
        "prune",
        "--input",
        str(source),
        "--output",
        "-",
        "--model",
        str(tiny_model_dir),
        "--device",
        "cpu",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "max_query_tokens" in err or "tokens" in err
    assert main([*argv, "--truncate-query"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert all("query" in p["truncated"] for p in line["passages"])
