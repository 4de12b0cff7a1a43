"""The rule that keeps one trained variant (ragprune.training.selection, used by training/gpu_sweep.sh)."""

from __future__ import annotations

import pytest

from ragprune.training.selection import choose_variant, pruning_figures


def summary(
    dl21: float, recall: float, dropped: float, removed: float | None = None, **sources: tuple[float, float]
) -> dict:
    by_source = {
        name: {"gold_recall": r, "other_dropped": d, "gold": 10, "other": 20}
        for name, (r, d) in sources.items()
    }
    pruning = {"gold_recall": recall, "other_dropped": dropped, "by_source": by_source}
    threshold = {"heldout_pruning": pruning} | ({} if removed is None else {"removed": removed})
    return {"best_dl21_ndcg@10": dl21, "threshold": threshold}


def test_a_variant_that_fails_a_gated_dataset_loses_to_one_that_passes_every_gate():
    runs = {
        # pooled figures pass, SciFact's held-out gold passages do not: session 13's L1r in miniature
        "pooled-only": summary(0.70, 0.93, 0.67, wikiqa=(0.92, 0.55), scifact=(0.96, 0.31)),
        "every-gate": summary(0.68, 0.92, 0.60, wikiqa=(0.91, 0.60), scifact=(0.91, 0.52)),
    }
    assert choose_variant(runs) == "every-gate"
    # without per-source figures (older summaries) the pooled ones decide: then the better DL21 wins
    assert choose_variant(runs, sources=()) == "pooled-only"


def test_a_summary_without_a_gated_source_that_others_report_fails_that_gate():
    old = summary(0.75, 0.95, 0.70)  # written before per-source figures: pooled only
    new = summary(0.70, 0.92, 0.60, wikiqa=(0.91, 0.60), scifact=(0.91, 0.52))
    assert choose_variant({"old": old, "new": new}) == "new"
    assert choose_variant({"old": old, "older": summary(0.74, 0.95, 0.70)}) == "old"  # pooled alike


def test_without_a_passing_variant_the_highest_lowest_dropped_share_at_full_recall_wins():
    runs = {
        "a": summary(0.70, 0.93, 0.67, wikiqa=(0.92, 0.55), scifact=(0.96, 0.31)),
        "b": summary(0.69, 0.93, 0.62, wikiqa=(0.92, 0.52), scifact=(0.94, 0.45)),
        "c": summary(0.72, 0.85, 0.80, wikiqa=(0.80, 0.70), scifact=(0.90, 0.60)),  # recall lost
    }
    assert choose_variant(runs) == "b"
    assert choose_variant({"c": runs["c"], "d": summary(0.73, 0.5, 0.9)}) == "d"  # no recall anywhere: DL21


def test_a_variant_that_removes_too_little_of_the_held_out_lists_fails_the_first_rule():
    gates = {"wikiqa": (0.93, 0.54), "scifact": (0.92, 0.51)}  # both gated datasets pass
    runs = {
        # gold passages pruned better, but the best sentence of every candidate kept: session 16's ctx3
        "ctx3": summary(0.70, 0.92, 0.60, removed=0.359, **gates),
        "shipped": summary(0.69, 0.92, 0.60, removed=0.661, wikiqa=(0.92, 0.52), scifact=(0.91, 0.50)),
    }
    assert choose_variant(runs) == "shipped"
    assert choose_variant(runs, min_removed=0.3) == "ctx3"
    # a summary without the removed share fails that gate when another reports it
    assert choose_variant({"old": summary(0.75, 0.95, 0.7, **gates), "new": runs["shipped"]}) == "new"


def test_pruning_figures_skip_sources_without_both_shares_and_an_empty_choice_fails():
    figures = pruning_figures(summary(0.7, 0.9, 0.5, wikiqa=(0.9, 0.6), scifact=(None, 0.4)))
    assert set(figures) == {"pooled", "wikiqa"}
    with pytest.raises(ValueError, match="no variant to choose from"):
        choose_variant({})
