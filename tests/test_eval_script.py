"""eval/evaluate.py end to end on two queries / examples per set (real data, tiny model): it writes the
table, the JSON and the plot, with every baseline present."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from ragprune.data import data_root

ROOT = Path(__file__).resolve().parents[1]


def _data_available() -> bool:
    try:
        return (data_root() / "trec-dl" / "dl19").is_dir()
    except (FileNotFoundError, ValueError):
        return False


@pytest.mark.skipif(not _data_available(), reason="needs the shared data folder ($RAGPRUNE_DATA)")
def test_evaluation_script_writes_all_tables(tiny_model_dir, tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location("ragprune_evaluate", ROOT / "eval" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.main(["--model", str(tiny_model_dir), "--limit", "2", "--device", "cpu", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["reranking"]) == {"TREC DL19", "TREC DL20", "BEIR SciFact"}
    for entry in results["reranking"].values():
        assert set(entry["rows"]) == {"BM25", "bi-encoder cosine", "ragprune"}
        assert entry["queries"] == 2
    for entry in results["pruning"].values():
        rows = entry["rows"]
        assert rows["keep everything"]["compression"] == 0.0
        assert any(name.startswith("embedding cosine") for name in rows)
    assert (tmp_path / "pruning.png").stat().st_size > 0
    assert "| TREC DL19 (2 q) |" in (tmp_path / "results.md").read_text()
