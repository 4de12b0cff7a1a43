"""How often a reranker ranks *every* gold-holding paragraph of a multi-paragraph question near the top.

Per-passage pruning keeps a supporting sentence only if its own passage looks relevant. On HotpotQA
the second ("bridge") paragraph often does not, and this measures by how much: the share of
questions whose gold paragraphs all rank within the top k of their context. Run it on a *training*
file (``pruning/hotpotqa_train_distractor_100.jsonl``); the dev file is for evaluation only.

    .venv/bin/python training/paragraph_coverage.py \\
        --data ../shared/data/pruning/hotpotqa_train_distractor_100.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ragprune.data import read_pruning_jsonl
from ragprune.evaluation.pruning import context_text
from ragprune.pipeline import RerankPruner


def coverage(pruner: RerankPruner, path: Path, ks: tuple[int, ...] = (2, 3)) -> dict[str, float]:
    """Share of questions (with gold) whose gold paragraphs are all in the reranker's top k, per k."""
    examples = [e for e in read_pruning_jsonl(path) if any(c.gold_sentence_ids for c in e.contexts)]
    results = pruner.process(
        [e.question for e in examples],
        [[context_text(c.sentences)[0] for c in e.contexts] for e in examples],
        threshold=0.0,
    )
    hits = dict.fromkeys(ks, 0)
    for example, result in zip(examples, results, strict=True):
        gold = {i for i, c in enumerate(example.contexts) if c.gold_sentence_ids}
        worst_rank = max(p.rank for p in result if p.index in gold)
        for k in ks:
            hits[k] += worst_rank <= k
    return {
        "questions": len(examples),
        **{f"all_gold_in_top{k}": hits[k] / max(1, len(examples)) for k in ks},
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="pruning JSONL (a training split)")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    with RerankPruner.load(args.model, device=args.device, progress=False) as pruner:
        result = coverage(pruner, args.data)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
