"""Compare multi-hop pruning policies and passage budgets on the HotpotQA *training* file (issue #10).

The shipped model scores the 100 training questions (10 paragraphs each, 2 supporting; each paragraph
with its Wikipedia title as the document title) once with the question (the first pass, as ``process``
does at the default threshold) and once with the second-hop query of ``ragprune.pipeline.multihop`` (the
question plus the kept sentences of the two best passages) over every other passage. From those two
passes it writes, for ``BRIDGES`` = 1..8 other passages kept:

- the evidence chain of ``ragprune.pipeline.multihop`` (first hop + the passages whose title the question
  or the evidence names, then the best others by first-pass + second-hop logit) with the first pass's
  sentence decisions (the library's policy); the chain without title links, with the first pass's
  sentence decisions and with the higher of the two passes' sentence scores (the previous merge,
  restricted to the chain);
- the same budget picked by the first-pass logit alone and by the second-hop logit alone (controls);

beside the one-hop default and the previous ``hops=2`` (higher of the two scores, every passage); plus
diagnostics: how well each signal puts the supporting passage that the first hop missed above a
distractor, and where the previous merge added sentences.

Budget. Session 6 chose ``BRIDGE_PASSAGES = 4`` for the chain without title links by a rule fixed before
its table: the highest share of tokens removed among the chain settings whose gold recall is at least
0.93 (0.03 above the issue's 0.90: the model saw about 91 of these questions in training, and one-hop
recall at the default threshold is 0.986 here against 0.956 on dev); ties go to the larger budget. That
chain then lost 0.077 recall from this file to dev (``multihop_dev_cpu.md``): the margin was too small
for a policy that ranks whole paragraphs of questions the model has seen. Session 9 added the title
links at the same budget and did not choose the budget again; the table prints what the session-6 rule
would now pick for the linked chain, which the library does not use.

Only the training file is read here. HotpotQA dev is an evaluation set; one decision above (keeping the
budget) was informed by session 8's dev figure, as said there.
Writes ``multihop_train.md`` to ``--out`` (default ``eval/results``). About 5 minutes on 2 CPU cores.

    .venv/bin/python eval/multihop_train.py --device cpu
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ragprune.data import data_root, read_pruning_jsonl
from ragprune.data.pruning import PruningExample
from ragprune.evaluation.pruning import PruningReport, context_documents, score_pruning
from ragprune.pipeline import RerankPruner
from ragprune.pipeline.multihop import (
    BRIDGE_PASSAGES,
    chain_of,
    evidence_of,
    expand_query,
    keep_chain,
    linked_passages,
    second_hop_passages,
)
from ragprune.pipeline.results import PassageResult, QueryResult
from ragprune.types import Query

TRAIN_FILE = "pruning/hotpotqa_train_distractor_100.jsonl"
HOP_PASSAGES = 2  # process's default hop_passages: not tuned here
BRIDGES = range(1, 9)
MIN_RECALL = 0.93

Decide = Callable[[int, PassageResult], list[bool]]
"""(example index, first-pass passage) -> keep flags of the passage's sentences."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("eval/results"))
    return p.parse_args(argv)


def two_passes(
    pruner: RerankPruner, examples: list[PruningExample]
) -> tuple[list[QueryResult], list[dict[int, PassageResult]], list[set[int]], list[set[int]], list[bool]]:
    """First-pass results (input order); per example the second-hop result of each other passage, the
    first hop's passage indices, the passages that the question or evidence names by title, and whether
    the second-hop query was cut to the query limit."""
    first = pruner.process(
        [example.question for example in examples], [context_documents(e) for e in examples], reorder=False
    )
    queries, documents, others_of, sources_of, links = [], [], [], [], []
    for result in first:
        evidence, sources = evidence_of(result, HOP_PASSAGES)
        others = second_hop_passages(result, sources)
        queries.append(Query(result.query.id, expand_query(result.query.text, evidence)))
        documents.append([p.document for p in others])
        others_of.append(others)
        sources_of.append(sources)
        links.append(linked_passages(result, sources, evidence))
    second = pruner.process(queries, documents, reorder=False, truncate=True)
    hops = [
        {p.index: again for p, again in zip(others, hop.passages, strict=True)}
        for others, hop in zip(others_of, second, strict=True)
    ]
    return first, hops, sources_of, links, [hop.query_truncated for hop in second]


def scored(examples: list[PruningExample], first: list[QueryResult], decide: Decide) -> PruningReport:
    """Score the spans that ``decide``'s keep flags give on every passage."""
    results = []
    for i, result in enumerate(first):
        passages = []
        for p in result.passages:
            flags = decide(i, p)
            passages.append(replace(p, sentences=[replace(s, kept=k) for s, k in zip(p.sentences, flags)]))
        results.append(replace(result, passages=passages))
    return score_pruning(examples, [[p.kept_spans for p in result.passages] for result in results])


def within_list_auc(
    examples: list[PruningExample],
    first: list[QueryResult],
    hops: list[dict[int, PassageResult]],
    signal: Callable[[PassageResult, PassageResult], float],
) -> float:
    """Share of (missed supporting passage, distractor) pairs among the non-first-hop passages of one
    question that ``signal(first pass, second hop)`` orders correctly (ties count half)."""
    wins = pairs = 0.0
    for example, result, hop in zip(examples, first, hops, strict=True):
        value = {index: signal(result.passages[index], again) for index, again in hop.items()}
        gold = [i for i in value if example.contexts[i].gold_sentence_ids]
        other = [i for i in value if not example.contexts[i].gold_sentence_ids]
        for g in gold:
            for d in other:
                wins += 1.0 if value[g] > value[d] else 0.5 if value[g] == value[d] else 0.0
                pairs += 1
    return wins / pairs


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    clock = time.time()
    examples = read_pruning_jsonl(data_root() / TRAIN_FILE)
    pruner = RerankPruner.load(args.model, device=args.device)
    first, hops, sources_of, links, cut = two_passes(pruner, examples)
    threshold = pruner.threshold

    def first_flags(p: PassageResult) -> list[bool]:
        return [s.kept for s in p.sentences]

    def max_flags(i: int, p: PassageResult) -> list[bool]:
        again = hops[i].get(p.index)
        if again is None:
            return first_flags(p)
        return [max(a.score, b.score) > threshold for a, b in zip(p.sentences, again.sentences, strict=True)]

    def chain_by(score: Callable[[int, PassageResult], float], bridges: int) -> list[set[int]]:
        chains = []
        for i, (result, sources) in enumerate(zip(first, sources_of)):
            others = sorted(hops[i], key=lambda index: (-score(i, result.passages[index]), index))
            chains.append(sources | set(others[:bridges]))
        return chains

    def report(chains: list[set[int]] | None, sentences: str) -> PruningReport:
        def decide(i: int, p: PassageResult) -> list[bool]:
            if chains is not None and p.index not in chains[i]:
                return [False] * len(p.sentences)
            return first_flags(p) if sentences == "first" else max_flags(i, p)

        return scored(examples, first, decide)

    second_logit = {i: {index: hop.logit for index, hop in h.items()} for i, h in enumerate(hops)}
    selectors: dict[str, Callable[[int, PassageResult], float]] = {
        # title links first (a bonus above any logit difference), then the chain score
        "linked, then chain": lambda i, p: p.logit + second_logit[i][p.index] + 1e6 * (p.index in links[i]),
        "chain (first + second logit)": lambda i, p: p.logit + second_logit[i][p.index],
        "first-pass logit": lambda i, p: p.logit,
        "second-hop logit": lambda i, p: second_logit[i][p.index],
    }
    rows: dict[tuple[str, str, int | None], PruningReport] = {
        ("hops=1 (default)", "first", None): report(None, "first"),
        ("previous hops=2 (every passage)", "max", None): report(None, "max"),
    }
    for bridges in BRIDGES:
        for name, selector in selectors.items():
            chains = chain_by(selector, bridges)
            rows[name, "first", bridges] = report(chains, "first")
            if name.startswith("chain"):
                rows[name, "max", bridges] = report(chains, "max")
    # The library's own functions give the policy's chains (a check that the table is the policy).
    library = [
        chain_of(result, sources, second_logit[i], BRIDGE_PASSAGES, linked=links[i])
        for i, (result, sources) in enumerate(zip(first, sources_of))
    ]
    assert library == chain_by(selectors["linked, then chain"], BRIDGE_PASSAGES)
    shipped = [keep_chain(replace(r, passages=list(r.passages)), c) for r, c in zip(first, library)]
    shipped_report = score_pruning(examples, [[p.kept_spans for p in r.passages] for r in shipped])
    assert shipped_report.recall == rows["linked, then chain", "first", BRIDGE_PASSAGES].recall

    eligible = [
        (report.compression, bridges, sentences)
        for (name, sentences, bridges), report in rows.items()
        if name.startswith("linked") and bridges is not None and report.recall >= MIN_RECALL
    ]
    chosen = max(eligible) if eligible else None

    signals: dict[str, Callable[[PassageResult, PassageResult], float]] = {
        "first-pass logit": lambda a, b: a.logit,
        "second-hop logit": lambda a, b: b.logit,
        "first + second logit (chain score)": lambda a, b: a.logit + b.logit,
        "second − first logit (the rise)": lambda a, b: b.logit - a.logit,
        "best sentence score, first pass": lambda a, b: max(s.score for s in a.sentences),
        "best sentence score, second hop": lambda a, b: max(s.score for s in b.sentences),
    }
    aucs = {name: within_list_auc(examples, first, hops, signal) for name, signal in signals.items()}
    added = {"supporting": 0, "distractor": 0}
    for i, (example, result) in enumerate(zip(examples, first)):
        for p in result.passages:
            new = sum(m and not f for f, m in zip(first_flags(p), max_flags(i, p)))
            added["supporting" if example.contexts[p.index].gold_sentence_ids else "distractor"] += new
    both_first = sum(
        all(i in sources for i, c in enumerate(example.contexts) if c.gold_sentence_ids)
        for example, sources in zip(examples, sources_of)
    )
    lines = write_report(args.out, rows, chosen, aucs, added, both_first, sum(cut), len(examples), threshold)
    print("\n".join(lines))
    print(f"{time.time() - clock:.0f} s")
    return {"chosen": chosen, "aucs": aucs}


def write_report(
    out: Path,
    rows: dict[tuple[str, str, int | None], PruningReport],
    chosen: tuple[float, int, str] | None,
    aucs: dict[str, float],
    added: dict[str, int],
    both_first: int,
    cut: int,
    examples: int,
    threshold: float,
) -> list[str]:
    """``multihop_train.md``: the budget, the table and the diagnostics; returns its lines."""
    choice = f"{chosen[1]} bridge passages, {chosen[2]}-pass sentence decisions" if chosen else "none"
    lines = [
        "# Multi-hop pruning policies on HotpotQA train (issue #10)\n",
        f"`eval/multihop_train.py`: shipped model, `{TRAIN_FILE}` ({examples} questions, 10 paragraphs, "
        f"2 supporting), default threshold {threshold}, first hop = the {HOP_PASSAGES} best passages by "
        "first-pass logit. HotpotQA dev is not read.\n",
        "Every paragraph carries its Wikipedia title as the document title. Library policy "
        f"(`ragprune.pipeline.multihop`): the linked chain with first-pass sentences, "
        f"**`BRIDGE_PASSAGES = {BRIDGE_PASSAGES}`**: session 6's choice for the chain without links, not "
        "chosen again, a decision informed by session 8's dev figure (the script's docstring says why). "
        "Session 6's rule (the most tokens removed with "
        f"recall >= {MIN_RECALL}; ties to more passages) would now pick: {choice}.\n",
        "Recall / tokens removed / answer kept; `bridges` = other passages kept besides the first hop "
        "(the rest keep nothing). Linked: passages whose title the question or the first hop's kept "
        "sentences name come first.\n",
        "| bridges | linked, then chain (library) | chain, first-pass sentences | chain, max of both passes "
        "| by first-pass logit | by second-hop logit |",
        "|---|---|---|---|---|---|",
    ]
    cell = "{r.recall:.3f} / {r.compression:.3f} / {r.answer_retention:.3f}"
    for bridges in BRIDGES:
        keys = [
            ("linked, then chain", "first", bridges),
            ("chain (first + second logit)", "first", bridges),
            ("chain (first + second logit)", "max", bridges),
            ("first-pass logit", "first", bridges),
            ("second-hop logit", "first", bridges),
        ]
        lines.append(f"| {bridges} | " + " | ".join(cell.format(r=rows[k]) for k in keys) + " |")
    for key in (("hops=1 (default)", "first", None), ("previous hops=2 (every passage)", "max", None)):
        lines.append(f"| {key[0]} | {cell.format(r=rows[key])} | | | | |")
    lines += [
        "\n## Why the previous second hop kept more\n",
        f"- Both supporting paragraphs are already in the first hop for {both_first} of {examples} "
        "questions; there the second hop can only add distractor text.",
        f"- Keeping the higher of the two sentence scores added {added['distractor']} sentences in "
        f"distractor paragraphs and {added['supporting']} in supporting ones.",
        f"- {cut} of {examples} second-hop queries were longer than the query limit and cut.",
        "\nShare of (missed supporting paragraph, distractor) pairs outside the first hop, same question, "
        "that a signal orders correctly (0.5 = chance):\n",
        "| signal | pairs ordered correctly |",
        "|---|---|",
        *(f"| {name} | {value:.3f} |" for name, value in aucs.items()),
        "",
        "The expanded query raises distractors more than the missing supporting paragraph (the rise is "
        "below chance), and the second hop's sentence scores separate the two no better than the first "
        "pass's; its logit, added to the first pass's, is the best of these signals for choosing the "
        "chain's other passages.",
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "multihop_train.md").write_text("\n".join(lines) + "\n")
    return lines


if __name__ == "__main__":
    main()
