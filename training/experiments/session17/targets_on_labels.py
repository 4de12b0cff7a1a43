"""Session 17 probe (CPU): which rank target puts the training questions' judged passages on top?

DL21 (53 queries) says the plain teacher z(MPNet + 0.25 SPLADE-tiny) is a better rank target than
``train-mix2`` = (z(teacher) + 2 z(shipped model)) / 3, the target every from-backbone run since session 15
learnt (0.7633 against 0.7361 on the validator's measure). This probe asks the training questions' own
judgements, a second and larger sample: over build_data.py groups with a candidate judged relevant
(``label`` >= 1) and one judged non-relevant or unjudged (gain 0), RR@10 and nDCG@10 (ir-measures) of
each target's ranking of the group's candidates. The shipped model's logits are computed here on the CPU
(it trained on an earlier build of these questions: in-sample, which favours the mix); m1's come from
``score_candidates.py`` (in-sample too). ``--split valid_pruning`` reads instead the questions
build_data.py holds out of training (chosen by a seeded hash of the question id, so the same in every
build): out of sample for both models. No evaluation set is read.

Usage: python training/experiments/session17/targets_on_labels.py --data .cache/s13/train \\
    --m1 .cache/s17/m1_scores.jsonl.gz [--split groups|valid_pruning] [--groups 300]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

from ragprune.evaluation import evaluate_run
from ragprune.pipeline import RerankPruner
from ragprune.training.ensembles import Spec, combine
from ragprune.training.files import read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--m1", type=Path, required=True, help="score_candidates.py output of m1")
    parser.add_argument("--model", default="ragprune/models/default")
    parser.add_argument("--split", choices=("groups", "valid_pruning"), default="groups")
    parser.add_argument("--groups", type=int, default=300)
    args = parser.parse_args()
    texts = {p["pid"]: p["text"] for p in read_jsonl(args.data / "pool.jsonl.gz")}
    judged = [
        r
        for r in read_jsonl(args.data / f"{args.split}.jsonl.gz")
        if len(r["candidates"]) >= 10
        and any((c.get("label") or 0) >= 1 for c in r["candidates"])
        and any((c.get("label") or 0) < 1 for c in r["candidates"])
    ]
    sample = random.Random(17).sample(judged, min(args.groups, len(judged)))
    m1 = {r["qid"]: r["scores"] for r in read_jsonl(args.m1)}
    pruner = RerankPruner.load(args.model, device="cpu", progress=False)
    results = pruner.process(
        [r["query"] for r in sample],
        [[texts[c["pid"]] for c in r["candidates"]] for r in sample],
        reorder=False,
    )
    seen = " (in-sample)" if args.split == "groups" else ""
    targets: dict[str, Spec] = {
        "plain teacher": ("z", {"teacher": 1}),
        f"train-mix2 (teacher + 2 x shipped) / 3{seen}": ("z", {"teacher": 1, "shipped": 2}),
        f"shipped model alone{seen}": ("z", {"shipped": 1}),
        f"m1 alone{seen}": ("z", {"m1": 1}),
        f"(teacher + 0.75 x m1) / 1.75{seen}": ("z", {"teacher": 1, "m1": 0.75}),
    }
    qrels: dict[str, dict[str, int]] = {}
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for record, result in zip(sample, results):
        pids = [c["pid"] for c in record["candidates"]]
        qrels[record["qid"]] = {
            pid: max(0, c.get("label") or 0) for pid, c in zip(pids, record["candidates"])
        }
        feats = {
            "teacher": np.asarray([c["teacher"] for c in record["candidates"]], float),
            "shipped": np.asarray([p.logit for p in result.passages], float),
            "m1": np.asarray([m1[record["qid"]][pid] for pid in pids], float),
        }
        for name, spec in targets.items():
            runs.setdefault(name, {})[record["qid"]] = dict(zip(pids, map(float, combine(spec, feats))))
    sources = sorted({r.get("source", "") for r in sample})
    print(f"{args.split}: {len(sample)} groups with judged candidates (of {len(judged)}); sources: {sources}")
    print("| target | RR@10 | nDCG@10 |")
    print("|---|---|---|")
    for name, run in runs.items():
        measured = evaluate_run(qrels, run, ["RR@10", "nDCG@10"]).aggregate
        print(f"| {name} | {measured['RR@10']:.4f} | {measured['nDCG@10']:.4f} |")


if __name__ == "__main__":
    main()
