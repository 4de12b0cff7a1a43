"""Held-out pruning per dataset for trained models, as ``train.py``'s summary now reports it (CPU).

Reads the held-out training questions of a data build (``valid_pruning`` gold passages and
``valid_spliced``), runs each model's token head once, and prints gold recall / share of other sentences
dropped per source at the round thresholds (``heldout_pruning`` with ``heldout_sources``). No evaluation
set is read. Used in session 14 to check that the per-source held-out figures rank models as the dev
sets do (``heldout_by_source.txt``).

Usage: python training/experiments/session14/heldout_by_source.py --data .cache/s13/train MODEL [MODEL ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ragprune.models.encoder import RerankPruneModel, load_tokenizer
from ragprune.pipeline.encoding import PairTemplate
from ragprune.training.config import TrainConfig
from ragprune.training.data import load_training_data
from ragprune.training.thresholds import ROUND_THRESHOLDS, heldout_pruning, token_outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=".cache/s13/train")
    parser.add_argument("models", nargs="+")
    args = parser.parse_args()
    tokenizer = load_tokenizer(args.models[0])
    config = TrainConfig(data=Path(args.data), init=Path(args.models[0]), out=Path("/tmp/heldout_by_source"))
    data = load_training_data(config, tokenizer)
    examples, sources = data.heldout_examples(), data.heldout_sources()
    template = PairTemplate.from_tokenizer(tokenizer)
    for folder in args.models:
        model = RerankPruneModel.from_pretrained(folder).float().eval()
        outputs = token_outputs(
            model, examples, template, config.max_length, tokenizer.pad_token_id or 0, torch.device("cpu"), 64
        )
        print(f"== {folder} (default threshold {model.config.threshold})")
        for t in ROUND_THRESHOLDS[:5]:
            result = heldout_pruning(outputs, data.valid_spliced_positions, t, sources)
            cells = [f"pooled {result['gold_recall']:.3f}/{result['other_dropped']:.3f}"]
            for name, x in result["by_source"].items():
                recall, dropped = x["gold_recall"], x["other_dropped"]
                shown = "n/a" if recall is None else f"{recall:.3f}"
                cells.append(f"{name} {shown}/{dropped if dropped is None else round(dropped, 3)}")
            print(f"  t={t:<4} " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
