"""eval/evaluate.py end to end on two queries / examples per set (real data, tiny model): it writes the
table, the JSON and the plot, with every baseline, the position slice, multi-hop and the gates present.
Multi-hop is also checked with a stand-in pruner whose ``process`` takes ``hops``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from shared_data import needs_data

from ragprune.data.pruning import PruningContext, PruningExample
from ragprune.fusion import DEFAULT_FUSION
from ragprune.types import Span

ROOT = Path(__file__).resolve().parents[1]
PRUNING_SETS = {"HotpotQA dev", "WikiQA dev (answerable)", "SciFact rationales dev"}


@pytest.fixture(scope="module")
def evaluate():
    spec = importlib.util.spec_from_file_location("ragprune_evaluate", ROOT / "eval" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@needs_data
def test_evaluation_script_writes_all_tables(evaluate, tiny_model_dir, tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("matplotlib")
    evaluate.main(["--model", str(tiny_model_dir), "--limit", "2", "--device", "cpu", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["reranking"]) == {"TREC DL19", "TREC DL20", "BEIR SciFact"}
    for entry in results["reranking"].values():
        assert set(entry["rows"]) == {
            "BM25",
            "bi-encoder cosine",
            "ragprune",
            f"ragprune + fusion {DEFAULT_FUSION} (library default)",
        }
        assert entry["queries"] == 2

    pruning = results["pruning"]
    assert pruning["default_threshold"] == 0.5  # the tiny model's config, not a constant of the script
    assert set(pruning["sets"]) == PRUNING_SETS
    for entry in pruning["sets"].values():
        rows = entry["rows"]
        assert entry["default_row"] == "ragprune default t=0.5"
        assert rows["keep everything"]["compression"] == 0.0
        assert rows["keep everything"]["non_gold_dropped"] == 0.0
        assert any(name.startswith("embedding cosine") for name in rows)
        assert sum(name.startswith("ragprune t=") for name in rows) == len(evaluate.MODEL_THRESHOLDS)
        # the cosine curve spans keep-everything to keep-nothing, and every model row is read on it
        compressions = [point[1] for point in entry["cosine_curve"]]
        assert (min(compressions), max(compressions)) == (0.0, 1.0)
        default = rows[entry["default_row"]]
        assert 0.0 <= default["non_gold_dropped"] <= 1.0
        assert default["recall_minus_cosine"] == pytest.approx(
            default["recall"] - default["cosine_recall_at_same_compression"]
        )
    assert pruning["sets"]["SciFact rationales dev"]["rows"]["keep everything"]["answer_retention"] is None

    position = pruning["position"]["sets"]
    assert set(position) == PRUNING_SETS | {"all three sets"}
    pooled = position["all three sets"]
    assert (
        pooled["first"]["examples"] == pooled["last"]["examples"] == 2 * 2 * 3
    )  # 2 draws x 2 examples x 3 sets
    assert pooled["last_minus_first"] == pytest.approx(pooled["last"]["recall"] - pooled["first"]["recall"])

    multi_hop = pruning["multi_hop"]
    assert list(multi_hop["rows"]) == ["hops=1", "hops=1, titles", "hops=2", "hops=2, no titles"]
    hotpot = pruning["sets"]["HotpotQA dev"]
    assert multi_hop["rows"]["hops=1"] == hotpot["rows"][hotpot["default_row"]]
    assert [s["text"] for s in pruning["readme_example"]["sentences"]] == [
        "Fleas live up to a year.",
        "The Eiffel Tower is in Paris.",
    ]

    gates = {gate["name"]: gate for gate in results["gates"]}
    assert len(gates) == 13
    recall_gate = gates["WikiQA dev (answerable): gold-sentence recall"]
    wikiqa = pruning["sets"]["WikiQA dev (answerable)"]
    assert recall_gate["value"] == wikiqa["rows"][wikiqa["default_row"]]["recall"]
    assert recall_gate["passed"] is (recall_gate["value"] >= 0.9)
    position_gate = gates["Spliced dev passages: gold recall, last − first (absolute)"]
    assert position_gate["value"] == pytest.approx(abs(pooled["last_minus_first"]))
    assert (
        gates["TREC DL19 nDCG@10 not below today's"]["value"]
        == results["reranking"]["TREC DL19"]["rows"]["ragprune"]["nDCG@10"]
    )
    hops_gate = gates["HotpotQA dev multi-hop: gold-sentence recall"]
    assert hops_gate["value"] == multi_hop["rows"]["hops=2"]["recall"]

    assert (tmp_path / "pruning.png").stat().st_size > 0
    report = (tmp_path / "results.md").read_text()
    assert "| TREC DL19 (2 q) |" in report
    assert "## Gates (issue 10" in report and "### Gold position on spliced dev passages" in report


@needs_data
def test_only_pruning_skips_reranking_and_reports_its_gates_as_not_run(evaluate, tiny_model_dir, tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("matplotlib")
    argv = ["--model", str(tiny_model_dir), "--only", "pruning", "--limit", "1", "--device", "cpu"]
    results = evaluate.main([*argv, "--out", str(tmp_path)])
    assert results["reranking"] == {} and set(results["pruning"]["sets"]) == PRUNING_SETS
    # one example per set leaves no other example to take fillers from: the slice is empty, not an error
    assert results["pruning"]["position"]["sets"]["all three sets"]["first"]["examples"] == 0
    gates = {gate["name"]: gate for gate in results["gates"]}
    assert gates["TREC DL20 nDCG@10 not below today's"]["passed"] is None
    assert gates["Spliced dev passages: gold recall, last − first (absolute)"]["passed"] is None
    assert "| TREC DL20 nDCG@10 not below today's | n/a |" in (tmp_path / "results.md").read_text()


class _HopsPruner:
    """Stands in for a pruner: records its calls (hops, and the passages' titles); keeps everything of
    passages with a title, nothing of bare texts, so the rows of the two can be told apart."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def process(self, queries, passages, *, threshold=None, reorder=True, hops=1):
        titles = [[None if isinstance(passage, str) else passage.title for passage in p] for p in passages]
        self.calls.append({"threshold": threshold, "reorder": reorder, "hops": hops, "titles": titles})
        return [
            [
                SimpleNamespace(
                    index=i, kept_spans=[] if isinstance(passage, str) else [Span(0, len(passage.text))]
                )
                for i, passage in reversed(list(enumerate(p)))
            ]
            for p in passages
        ]


def test_multi_hop_runs_one_and_two_hops_with_titles_and_two_without(evaluate):
    examples = [
        PruningExample(
            id="x",
            source="test",
            question="q?",
            answers=["one"],
            contexts=[
                PruningContext(title="One", sentences=["Gold one.", "Noise."], gold_sentence_ids=[0]),
                PruningContext(title="Two", sentences=["Other."], gold_sentence_ids=[]),
            ],
        )
    ]
    single_hop = {
        "rows": {"default": {"recall": 0.5}},
        "default_row": "default",
        "cosine_curve": [[None, 0.0, 1.0], [None, 1.0, 0.0]],
    }
    pruner = _HopsPruner()
    out = evaluate.evaluate_multi_hop(pruner, examples, single_hop)
    titled, plain = [["One", "Two"]], [[None, None]]
    assert pruner.calls == [
        {"threshold": None, "reorder": False, "hops": 1, "titles": titled},
        {"threshold": None, "reorder": False, "hops": 2, "titles": titled},
        {"threshold": None, "reorder": False, "hops": 2, "titles": plain},
    ]
    assert out["rows"]["hops=1"] == {"recall": 0.5}
    assert out["rows"]["hops=2, no titles"]["recall"] == 0.0  # the bare texts: the stand-in keeps nothing
    row = out["rows"]["hops=2"]  # with titles, everything kept: recall 1, nothing removed, cosine 1 at 0
    assert (row["recall"], row["compression"], row["non_gold_dropped"], row["answer_retention"]) == (
        1.0,
        0.0,
        0.0,
        1.0,
    )
    assert (row["cosine_recall_at_same_compression"], row["recall_minus_cosine"]) == (1.0, 0.0)
