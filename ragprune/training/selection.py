"""Which trained variant to keep: the rule of ``training/gpu_sweep.sh``, read from ``train.py``'s
summaries, so on training splits only (DL21 validation and the held-out training questions).

Issue 10's pruning gates are per dataset (WikiQA and SciFact: gold-sentence recall >= 0.90 with >= 50% of
the other sentences dropped inside gold passages, at the default threshold). The pooled held-out figure
cannot stand in for them: the NQ silver questions hold half of its gold sentences and the spliced
passages' off-topic fillers are easy to drop, so a model passed it (0.935 / 0.670 held out) while dropping
43% on SciFact dev (session 13's L1r). The rule therefore also reads each gated dataset's held-out gold
passages (``heldout_pruning``'s ``by_source``) where a summary has them, and the share of text removed
over the held-out candidate lists (``threshold``'s ``removed``), as issue 10's multi-hop gate reads the
context removed: gold-passage figures alone passed a sentence-context layer that kept the best sentence of
every passage, relevant or not, and removed 0.359 of the held-out lists against the shipped model's 0.661
(session 16).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ragprune.evaluation.gates import MULTI_HOP_MIN_REMOVED, PRUNING_MIN_DROPPED, PRUNING_MIN_RECALL

GATED_SOURCES = ("wikiqa", "scifact")
"""The datasets whose held-out gold passages gate a variant, as issue 10 gates WikiQA and SciFact dev."""


def pruning_figures(summary: Mapping[str, Any], sources: Sequence[str] = GATED_SOURCES) -> dict[str, dict]:
    """``{"pooled": {...}, <source>: {...}}``: gold recall and share of other sentences dropped at the
    variant's default threshold, pooled over the held-out passages and for each of ``sources`` that the
    summary reports (summaries written before per-source figures existed give the pooled one only; a
    source without gold or other sentences is left out)."""
    pruning = summary.get("threshold", {}).get("heldout_pruning", {})
    figures = {
        "pooled": {
            "gold_recall": pruning.get("gold_recall", 0.0),
            "other_dropped": pruning.get("other_dropped", 0.0),
        }
    }
    for source in sources:
        found = pruning.get("by_source", {}).get(source) or {}
        if found.get("gold_recall") is not None and found.get("other_dropped") is not None:
            figures[source] = found
    return figures


def choose_variant(
    summaries: Mapping[str, Mapping[str, Any]],
    sources: Sequence[str] = GATED_SOURCES,
    min_recall: float = PRUNING_MIN_RECALL,
    min_dropped: float = PRUNING_MIN_DROPPED,
    min_removed: float = MULTI_HOP_MIN_REMOVED,
) -> str:
    """The name of the variant to keep among ``summaries`` (name -> ``train.py``'s ``summary.json``).

    1. Among the variants whose held-out pruning keeps gold recall >= ``min_recall`` and drops >=
       ``min_dropped``, pooled and on every gated source, and removes >= ``min_removed`` of the held-out
       candidate lists' text: the best DL21 validation nDCG@10.
    2. Else, among those that keep the recall everywhere: the one whose lowest dropped share (pooled or
       on a gated source) is highest.
    3. Else the best DL21 nDCG@10.

    A gated source (or the removed share) that some summaries report and one does not (a summary
    written before the figure existed, in a sweep resumed across that change) fails that one's gate.
    Ties go to the first name given. ``ValueError`` when ``summaries`` is empty.
    """
    if not summaries:
        raise ValueError("no variant to choose from: give at least one summary")
    figures = {name: pruning_figures(summary, sources) for name, summary in summaries.items()}
    reported = {source for f in figures.values() for source in f}
    missing = {"gold_recall": 0.0, "other_dropped": 0.0}  # a gate others were judged on fails here
    figures = {name: {source: f.get(source, missing) for source in reported} for name, f in figures.items()}
    dl21 = {name: summary.get("best_dl21_ndcg@10", float("-inf")) for name, summary in summaries.items()}
    recall_ok = [n for n, f in figures.items() if all(x["gold_recall"] >= min_recall for x in f.values())]
    removed = {name: summary.get("threshold", {}).get("removed") for name, summary in summaries.items()}
    lists_ok = {n for n, r in removed.items() if r is not None and r >= min_removed}
    if all(r is None for r in removed.values()):
        lists_ok = set(summaries)
    passing = [
        n
        for n in recall_ok
        if n in lists_ok and all(x["other_dropped"] >= min_dropped for x in figures[n].values())
    ]
    if passing:
        return max(passing, key=lambda n: dl21[n])
    if recall_ok:
        return max(recall_ok, key=lambda n: min(x["other_dropped"] for x in figures[n].values()))
    return max(summaries, key=lambda n: dl21[n])
