"""Re-pick a trained model's default pruning threshold on the held-out training questions, on the CPU.

``train.py`` picks the threshold at the end of a GPU run over every candidate of the held-out slice
(``valid_pruning.jsonl.gz`` from ``build_data.py``; training data, never an evaluation set). This script
does the same selection with the same function (``ragprune.training.thresholds.pick_threshold``) for a
model folder that already exists, scoring only the passages that hold gold sentences (what the recall
target constrains) and each question's best non-gold candidate, so it runs in a minute on a laptop CPU.
``removed`` is measured over those passages. It rewrites the folder's ``ragprune_config.json`` (threshold
and ``provenance.threshold_selection``). Defaults are ``TrainConfig``'s.

    .venv/bin/python training/tune_threshold.py --model ragprune/models/default --data .carry/train
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ragprune.models.config import RerankPruneConfig
from ragprune.pipeline import RerankPruner
from ragprune.pipeline.encoding import tokenize_passages
from ragprune.training import files
from ragprune.training.config import TrainConfig
from ragprune.training.data import build_groups
from ragprune.training.thresholds import pick_threshold


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=TrainConfig.default("data"))
    parser.add_argument("--target-recall", type=float, default=TrainConfig.default("target_recall"))
    parser.add_argument("--silver-margin", type=float, default=TrainConfig.default("silver_margin"))
    parser.add_argument("--silver-min-cos", type=float, default=TrainConfig.default("silver_min_cos"))
    args = parser.parse_args(argv)

    records = files.read_jsonl(args.data / files.VALID_PRUNING)
    for record in records:  # gold passages, plus the best non-gold one (groups need two candidates)
        gold = record.get("gold") or {}
        others = sorted(
            (c for c in record["candidates"] if c["pid"] not in gold), key=lambda c: -c["teacher"]
        )
        record["candidates"] = [c for c in record["candidates"] if c["pid"] in gold] + others[:1]
    needed = {c["pid"] for record in records for c in record["candidates"]}
    pool = [p for p in files.read_jsonl(args.data / files.POOL) if p["pid"] in needed]
    texts = {p["pid"]: p["text"] for p in pool}

    pruner = RerankPruner.load(args.model, device="cpu")
    passages = tokenize_passages(pruner.tokenizer, [p["text"] for p in pool], [""] * len(pool))
    encoded = pruner.tokenizer([r["query"] for r in records], add_special_tokens=False)["input_ids"]
    query_ids = {r["qid"]: np.asarray(ids) for r, ids in zip(records, encoded)}
    groups = build_groups(
        [r for r in records if r["candidates"]],
        {p["pid"]: i for i, p in enumerate(pool)},
        passages,
        query_ids,
        {},
        silver_margin=args.silver_margin,
        silver_min_cos=args.silver_min_cos,
        silver_weight=TrainConfig.default("silver_weight"),  # token-loss weights: unused here
        irrelevant_weight=TrainConfig.default("irrelevant_weight"),
    )
    selection = pick_threshold(pruner, groups, texts, args.target_recall)
    selection["method"] = (
        "training/tune_threshold.py: gold + best non-gold passage per valid_pruning question"
    )
    config = RerankPruneConfig.load(args.model)
    config.threshold = selection["threshold"]
    config.provenance.threshold_selection = selection
    config.save(args.model)
    print(selection)
    return selection


if __name__ == "__main__":
    main()
