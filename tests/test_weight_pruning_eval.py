"""eval/weight_pruning.py end to end on one query / example per set (real data, tiny model): the table, the
JSON and the plot, with the dense model, one-shot and recovered rows, throughput beside the dense model, the
DAI comparison and the gate; and the held-out DAI sweep."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from shared_data import needs_data

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location(
        "ragprune_weight_pruning_eval", ROOT / "eval" / "weight_pruning.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


SMALL = ["--device", "cpu", "--limit", "1", "--calibration-size", "2", "--candidates", "4"]


@needs_data
def test_weight_pruning_table_end_to_end(script, tiny_model_dir, tmp_path):
    pytest.importorskip("matplotlib")
    argv = [
        "--model",
        str(tiny_model_dir),
        *SMALL,
        "--recover-steps",
        "2",
        "--methods",
        "magnitude",
        "gaprune",
        "--dai-variants",
        "gaprune-ascoded",
        "--structures",
        "2:4",
        "heads",
        "--sparsities",
        "0.5",
        "--throughput-pairs",
        "8",
        "--cpu-throughput-pairs",
        "8",
        "--repeats",
        "1",
        "--out",
        str(tmp_path),
        "--suffix=-test",
    ]
    script.main(argv)
    results = json.loads((tmp_path / "weight_pruning-test.json").read_text())
    assert set(results["dense"]["metrics"]) >= {
        "DL19",
        "SciFact",
        "WikiQA recall",
        "SciFact-rationales recall",
    }
    rows = {(r["structure"], r["method"]) for r in results["rows"]}
    assert rows == {(s, m) for s in ("2:4", "heads") for m in ("magnitude", "gaprune", "gaprune-ascoded")}
    for row in results["rows"]:
        assert {"one_shot", "recovered", "recovery", "speed"} <= set(row)
        assert row["speed"]["cpu"]["dense"] > 0 and row["speed"]["cpu"]["pruned"] > 0
    heads = next(r for r in results["rows"] if r["structure"] == "heads")
    assert heads["parameters"]["encoder"] < results["dense"]["parameters"]["encoder"]
    table = (tmp_path / "weight_pruning-test.md").read_text()
    assert "DAI (`gaprune`) has the best SciFact nDCG@10 of the four methods in" in table
    assert "Ship gate" in table
    assert (tmp_path / "weight_pruning-test.png").stat().st_size > 0


@needs_data
def test_dai_sweep_reads_training_groups_only(script, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(script, "SWEEP", ("magnitude", "gaprune"))
    monkeypatch.setattr(script, "SWEEP_STRUCTURES", ("ffn",))
    monkeypatch.setattr(script, "evaluation_sets", None)  # the sweep must not touch evaluation sets
    script.main(
        ["--model", str(tiny_model_dir), *SMALL, "--dai-sweep", "--heldout-size", "2", "--out", str(tmp_path)]
    )
    results = json.loads((tmp_path / "weight_pruning-dai-heldout.json").read_text())
    assert [(r["structure"], r["method"]) for r in results["rows"]] == [
        ("dense", "dense"),
        ("ffn", "magnitude"),
        ("ffn", "gaprune"),
    ]
    assert results["rows"][0]["domain rank KL"] == pytest.approx(0.0, abs=1e-6)


@needs_data
def test_candidate_gate_reads_each_model_with_its_own_tokenizer(script, tiny_model_dir, tmp_path):
    from sample_texts import QUERY, TEXTS

    from ragprune.models import load_model
    from ragprune.weight_pruning.vocabulary import trim_to_texts

    model, tokenizer = load_model(tiny_model_dir)
    small, small_tokenizer, _ = trim_to_texts(model, tokenizer, TEXTS + [QUERY], 3000)
    small.save_pretrained(tmp_path / "small", small_tokenizer)
    argv = ["--model", str(tiny_model_dir), "--candidate", str(tmp_path / "small"), *SMALL,
            "--throughput-pairs", "8", "--repeats", "1", "--out", str(tmp_path),
            "--suffix=-test"]  # fmt: skip
    results = script.main(argv)
    entries = results["entries"]
    assert entries["candidate"]["vocabulary"] == len(small_tokenizer) < entries["dense"]["vocabulary"]
    assert entries["candidate"]["parameters"]["encoder"] < entries["dense"]["parameters"]["encoder"]
    assert set(results["speed"]) == {"cpu"} and results["speed"]["cpu"]["pruned"] > 0
    checks = results["gate"]["checks"]
    # the tiny model is mostly embeddings: the trimmed vocabulary alone takes it under 70%
    assert checks["GPU speed-up >= 1.3"] is None and checks["encoder parameters <= 70%"] is True
    assert results["gate"]["passed"] is False  # a check that was not measured (the GPU) never passes
    table = (tmp_path / "weight_pruning-candidate-test.md").read_text()
    assert "| layers / vocabulary | 2 / 30,522 | 2 / " in table and "| GPU speed-up >= 1.3 | n/a |" in table
