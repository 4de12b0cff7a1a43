"""Average models fine-tuned from one backbone into one ("greedy model soup"), then calibrate and save it.

Models fine-tuned from the same initial weights with different seeds usually sit in one basin of the
loss, and their weight average often ranks better than each of them, at no inference cost (Wortsman
et al., 2022, "Model soups"). Greedy soup: ingredients sorted by DL21 validation nDCG@10, each one kept
only if adding it does not lower the soup's score. DL21 is a training split held out for validation;
DL19/DL20/BEIR are never read. The soup then gets the same calibration, threshold selection and saving
as ``train.py``'s output (``ragprune.training.finalize``), with the settings of the first model's training
run (its provenance: labels, target recall, threshold candidates), ``train.py``'s defaults where it
recorded none.

    python3 training/soup.py --models /tmp/a/model /tmp/b/model --data .carry/train --out /tmp/soup
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path

import torch

from ragprune.devices import default_device
from ragprune.models import RerankPruneModel, load_tokenizer
from ragprune.training.config import TrainConfig
from ragprune.training.data import load_training_data
from ragprune.training.finalize import finalize
from ragprune.training.validation import RankingValidator, inference_pruner

log = logging.getLogger("soup")


def average(models: list[RerankPruneModel]) -> RerankPruneModel:
    """A copy of the first model holding the element-wise mean of every model's weights (eval mode)."""
    states = [m.state_dict() for m in models]
    soup = RerankPruneModel(models[0].backbone_config, copy.deepcopy(models[0].config))
    soup.load_state_dict({k: torch.stack([s[k].float() for s in states]).mean(0) for k in states[0]})
    return soup.eval()


def soup_config(
    first: RerankPruneModel, folder: Path, data: Path, out: Path, device: str | None
) -> TrainConfig:
    """The training settings of ``first`` (loaded from ``folder``), as its provenance recorded them, with
    this run's paths and ``first``'s window: the soup is labelled, calibrated and thresholded as that run
    was (e.g. its ``target_recall`` and ``round_thresholds``). Settings it did not record, or that this
    version no longer has, take ``train.py``'s defaults."""
    recorded = dict(first.config.provenance.train_config)
    recorded |= {
        "backbone": None,
        "init": folder,
        "data": data,
        "out": out,
        "device": device,
        "max_length": first.config.max_length,
    }
    return TrainConfig.from_dict(recorded, strict=False)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="model folders (same backbone)")
    parser.add_argument("--data", type=Path, default=Path(".cache/train"), help="build_data.py output")
    parser.add_argument("--out", type=Path, required=True, help="output folder (model/, summary.json)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device(args.device or default_device())

    models = [RerankPruneModel.from_pretrained(folder) for folder in args.models]
    tokenizer = load_tokenizer(args.models[0])
    config = soup_config(models[0], args.models[0], args.data, args.out, args.device)
    data = load_training_data(config, tokenizer)
    validator = RankingValidator.from_records(data.valid)

    def score(model: RerankPruneModel) -> float:
        with inference_pruner(model, tokenizer, device, config.eval_batch_size) as pruner:
            return validator.validate_model(pruner, data.texts).ndcg10

    scores = [score(m) for m in models]
    order = sorted(range(len(models)), key=lambda i: -scores[i])
    chosen, best = [order[0]], scores[order[0]]
    for i in order[1:]:
        candidate = score(average([models[j] for j in chosen + [i]]))
        log.info("soup of %s: DL21 nDCG@10 %.4f (best so far %.4f)", chosen + [i], candidate, best)
        if candidate >= best:
            chosen, best = chosen + [i], candidate
    record = {
        "soup": {
            "ingredients": [str(args.models[i]) for i in chosen],
            "ingredient_dl21_ndcg@10": dict(zip(map(str, args.models), scores)),
        },
        "best_dl21_ndcg@10": best,
        "history": [h for i in chosen for h in models[i].config.provenance.history],
    }
    soup = average([models[i] for i in chosen]).to(device)  # finalize runs the model where it lies
    summary = finalize(soup, tokenizer, device, data, config, record)
    log.info("%s", json.dumps(summary["soup"]))
    return summary


if __name__ == "__main__":
    main()
