"""``ragprune.distributed``: the ``local`` and ``ray`` engines write what the inline ``ragprune rerank``
writes (ids, scores to 1e-3, spans exactly), and a worker failing mid-run loses and repeats nothing.

The Ray tests share one Ray instance of the module (``ray.init(num_cpus=2, num_gpus=0)``) and skip when Ray
is not installed (the ``distributed`` extra); the local engine's run on two spawned CPU workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragprune.cli import main
from ragprune.data import DataFormatError, read_run
from ragprune.distributed import FailOnce, IncompleteOutputError, read_rows, read_trec, rerank_prune

# one Ray instance per test process: with pytest-xdist's --dist loadgroup these tests share one worker
pytestmark = pytest.mark.xdist_group("ragprune-distributed")

SENTENCES = [
    "Fleas live up to a year.",
    "Their life cycle depends on temperature.",
    "The Eiffel Tower is in Paris.",
    "It was finished in 1889.",
    "Cats sleep a lot.",
    "Dogs bark at night.",
    "Ticks are not insects.",
    "They are arachnids and carry diseases such as Lyme disease in many parts of the world.",
]
QUERIES = {
    "q1": "how long do fleas live",
    "q2": "where is the eiffel tower",
    "q3": "do cats sleep much",
    "q4": "are ticks insects",
    "q5": "when was the eiffel tower finished",
    "q6": "what do dogs do at night",
}
PASSAGES = {  # two to ten sentences each; the longest ones need more than one window of the tiny model
    f"p{i}": " ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(2 + i)) for i in range(9)
}
TOP_K = 6
QUERIES_PER_BATCH = 2  # six queries: three batches, so a failure lands mid-run


@pytest.fixture(scope="module")
def trec_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("trec")
    runs = "".join(
        f"{qid} Q0 p{(n + i) % len(PASSAGES)} {i + 1} {20 - i}.5 bm25\n"
        for n, qid in enumerate(QUERIES)
        for i in range(8)
    )
    contents = {
        "topics": "".join(f"{qid}\t{text}\n" for qid, text in QUERIES.items()),
        "passages": "".join(f"{pid}\t{text}\n" for pid, text in PASSAGES.items()),
        "run": runs,
    }
    paths = {}
    for name, content in contents.items():
        paths[name] = folder / f"{name}.txt"
        paths[name].write_text(content)
    return paths


@pytest.fixture(scope="module")
def inline_outputs(trec_files: dict[str, Path], tiny_model_dir: Path, tmp_path_factory) -> dict[str, Path]:
    """The reference: today's ``ragprune rerank`` (inline engine, the CLI's own code path)."""
    folder = tmp_path_factory.mktemp("inline")
    outputs = {"run": folder / "out.trec", "pruned": folder / "pruned.jsonl"}
    code = main(
        [
            "rerank",
            *("--queries", str(trec_files["topics"]), "--run", str(trec_files["run"])),
            *("--passages", str(trec_files["passages"]), "--top-k", str(TOP_K)),
            *("--output", str(outputs["run"]), "--pruned-output", str(outputs["pruned"])),
            *("--model", str(tiny_model_dir), "--device", "cpu"),
        ]
    )
    assert code == 0
    return outputs


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    """One local Ray instance for the module's Ray tests (2 CPUs, no GPU)."""
    ray = pytest.importorskip("ray", reason="needs Ray Data: pip install 'ragprune[distributed]'")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _run(trec_files, tiny_model_dir, folder: Path, engine: str, **options) -> dict[str, Path]:
    outputs = {"run": folder / f"{engine}.trec", "pruned": folder / f"{engine}.jsonl"}
    summary = rerank_prune(
        read_trec(trec_files["topics"], trec_files["run"], trec_files["passages"], top_k=TOP_K),
        outputs["run"],
        outputs["pruned"],
        engine=engine,
        model=tiny_model_dir,
        device="cpu",
        queries_per_batch=QUERIES_PER_BATCH,
        **options,
    )
    assert (summary.queries, summary.pairs) == (len(QUERIES), len(QUERIES) * TOP_K)
    return outputs


def _assert_same(outputs: dict[str, Path], reference: dict[str, Path]) -> None:
    """Same queries and documents in the same order, scores to 1e-3, spans and decisions exactly, and
    every pair exactly once."""
    run, expected = read_run(outputs["run"]), read_run(reference["run"])
    assert list(run) == list(expected)
    for qid in expected:
        assert list(run[qid]) == list(expected[qid])
        assert run[qid] == pytest.approx(expected[qid], abs=1e-3)
    lines = Counter((qid, doc) for qid, _, doc, *_ in (line.split() for line in outputs["run"].open()))
    assert set(lines.values()) == {1}
    got = [json.loads(line) for line in outputs["pruned"].read_text().splitlines()]
    want = [json.loads(line) for line in reference["pruned"].read_text().splitlines()]
    assert [q["query_id"] for q in got] == [q["query_id"] for q in want] == sorted(QUERIES)
    for query, reference_query in zip(got, want):
        assert len(query["passages"]) == TOP_K
        for passage, reference_passage in zip(query["passages"], reference_query["passages"]):
            assert passage["id"] == reference_passage["id"]
            assert passage["rank"] == reference_passage["rank"]
            assert passage["logit"] == pytest.approx(reference_passage["logit"], abs=1e-3)
            assert passage["kept_spans"] == reference_passage["kept_spans"]
            assert [s["span"] for s in passage["sentences"]] == [
                s["span"] for s in reference_passage["sentences"]
            ]
            assert [s["kept"] for s in passage["sentences"]] == [
                s["kept"] for s in reference_passage["sentences"]
            ]
            assert passage["pruned_text"] == reference_passage["pruned_text"]


# ---- inputs and the end-of-run check (no workers) ------------------------------------------------------


def test_rows_from_jsonl_and_parquet_give_the_trec_input(trec_files, tmp_path):
    source = read_trec(trec_files["topics"], trec_files["run"], trec_files["passages"], top_k=TOP_K)
    rows = [
        {"qid": task.qid, "query": task.query, "docid": doc.id, "text": doc.text, "score": task.run[doc.id]}
        for task in source.tasks
        for doc in task.candidates
    ]
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in reversed(rows)))
    from_jsonl = read_rows(jsonl)
    assert [(t.qid, [d.id for d in t.candidates]) for t in from_jsonl.tasks] == [
        (t.qid, [d.id for d in t.candidates]) for t in source.tasks
    ]
    assert from_jsonl.top_k == TOP_K and from_jsonl.has_scores
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    parquet = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    assert read_rows(parquet).tasks == from_jsonl.tasks


def test_rows_without_scores_keep_input_order_and_bad_rows_are_named(tmp_path):
    rows = [{"qid": 1, "query": "q", "docid": d, "text": f"passage {d}."} for d in ("b", "a", "c")]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    source = read_rows(path, top_k=2)
    assert [d.id for d in source.tasks[0].candidates] == ["b", "a"] and not source.has_scores
    path.write_text("".join(json.dumps(row) + "\n" for row in [*rows, rows[0]]))
    with pytest.raises(DataFormatError, match=r"row 4: pair \(qid '1', docid 'b'\) appears twice"):
        read_rows(path)
    path.write_text(json.dumps({"qid": "1", "query": "q", "text": "t"}) + "\n")
    with pytest.raises(DataFormatError, match="row 1 has no docid; every row needs qid, query, docid, text"):
        read_rows(path)
    with pytest.raises(DataFormatError, match="unknown row file type '.csv'"):
        read_rows(tmp_path / "rows.csv")


def test_the_end_of_run_check_names_missing_and_duplicated_queries(trec_files, tmp_path):
    from ragprune.distributed.output import OutputWriter
    from ragprune.distributed.work import QueryOutput

    source = read_trec(trec_files["topics"], trec_files["run"], trec_files["passages"], top_k=TOP_K)
    with OutputWriter(tmp_path / "out.trec", None, "t") as writer:
        for task in source.tasks[1:]:
            output = QueryOutput(task.qid, tuple(task.run.items()), "{}", task.pairs, 0.0)
            writer.write(output)
            if task.qid == "q4":
                writer.write(output)
    with pytest.raises(
        IncompleteOutputError, match=r"missing queries: 1 \(e.g. \['q1'\]\); duplicated .*'q4'"
    ):
        writer.check(source)


def test_bad_options_name_the_fix(trec_files, tiny_model_dir, tmp_path):
    source = read_trec(trec_files["topics"], trec_files["run"], trec_files["passages"])
    with pytest.raises(ValueError, match="engine='spark'; use one of"):
        rerank_prune(source, tmp_path / "r", engine="spark")
    with pytest.raises(ValueError, match="the local engine uses 'cuda'"):
        rerank_prune(source, tmp_path / "r", engine="local", device="cuda:3", model=tiny_model_dir)
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        rerank_prune(source, tmp_path / "no" / "r", engine="inline", model=tiny_model_dir)


def test_importing_the_package_does_not_import_ray():
    code = "import ragprune.distributed, sys; print('ray' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ---- engines --------------------------------------------------------------------------------------------


def test_inline_entry_matches_the_cli(trec_files, tiny_model_dir, inline_outputs, tmp_path):
    _assert_same(_run(trec_files, tiny_model_dir, tmp_path, "inline"), inline_outputs)


def test_local_engine_with_a_worker_dying_mid_run_matches_inline(
    trec_files, tiny_model_dir, inline_outputs, tmp_path
):
    fault = FailOnce(str(tmp_path / "failed"), qid="q3", how="exit")
    outputs = _run(trec_files, tiny_model_dir, tmp_path, "local", workers=2, fault=fault)
    assert (tmp_path / "failed").exists()  # the fault did fire
    _assert_same(outputs, inline_outputs)


@pytest.mark.parametrize(("how", "workers"), [("exit", 1), ("raise", 2)])
def test_ray_engine_with_a_worker_failing_mid_run_matches_inline(
    ray_cluster, trec_files, tiny_model_dir, inline_outputs, tmp_path, how, workers
):
    """A crashed actor (restarted, its batch retried) and a batch that raised (retried), each checked
    against the inline run: every pair once, the same ids, scores and spans. Each Ray run starts fresh
    actors (10-25 s on 2 cores), so these two runs are also the test that the engine matches inline."""
    fault = FailOnce(str(tmp_path / "failed"), qid="q3", how=how)
    outputs = _run(trec_files, tiny_model_dir, tmp_path, "ray", workers=workers, fault=fault)
    assert (tmp_path / "failed").exists()
    _assert_same(outputs, inline_outputs)


def test_ray_placement_one_worker_per_gpu_or_cpu_workers():
    from ragprune.distributed.ray_engine import _placement
    from ragprune.distributed.work import PrunerSettings

    settings = PrunerSettings(model=None, top_k=100, fusion="none")
    gpu_settings, options = _placement(settings, None, {"GPU": 2.0, "CPU": 16.0})
    assert options == {"concurrency": 2, "num_gpus": 1, "num_cpus": 1}
    assert (gpu_settings.device, gpu_settings.prepare_workers) == ("cuda", 7)
    cpu_settings, options = _placement(settings, 2, {"CPU": 8.0})
    assert options == {"concurrency": 2, "num_cpus": 1} and (cpu_settings.device, cpu_settings.threads) == (
        "cpu",
        4,
    )
    with pytest.raises(ValueError, match="workers=3 but the Ray cluster has 2 GPU"):
        _placement(settings, 3, {"GPU": 2.0, "CPU": 16.0})
    with pytest.raises(ValueError, match="device='cuda' but the Ray cluster has no GPU"):
        _placement(PrunerSettings(model=None, top_k=1, fusion="none", device="cuda"), None, {"CPU": 2.0})


def test_cli_engine_option_writes_the_inline_files(
    trec_files, tiny_model_dir, inline_outputs, tmp_path, monkeypatch, capsys
):
    """``ragprune rerank --engine local --workers 2`` goes through ``rerank_prune`` with the CLI's options
    (run here on the inline engine to keep the test fast; the engines' own tests are above)."""
    import ragprune.distributed.api as api

    calls = []
    real = api.rerank_prune

    def inline_instead(*args, **options):
        calls.append(options)
        return real(*args, **{**options, "engine": "inline", "workers": None})

    monkeypatch.setattr(api, "rerank_prune", inline_instead)
    outputs = {"run": tmp_path / "out.trec", "pruned": tmp_path / "pruned.jsonl"}
    common = [
        "rerank",
        *("--queries", str(trec_files["topics"]), "--run", str(trec_files["run"])),
        *("--passages", str(trec_files["passages"]), "--top-k", str(TOP_K)),
        *("--output", str(outputs["run"]), "--pruned-output", str(outputs["pruned"])),
        *("--model", str(tiny_model_dir), "--device", "cpu"),
    ]
    assert main([*common, "--engine", "local", "--workers", "2"]) == 0
    assert (calls[0]["engine"], calls[0]["workers"], calls[0]["fusion"]) == ("local", 2, "rrf:60")
    _assert_same(outputs, inline_outputs)
    assert "pairs\t36" in capsys.readouterr().out
    assert main([*common, "--workers", "2"]) == 2
    assert "--workers needs --engine local or ray" in capsys.readouterr().err
