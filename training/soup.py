"""Average models fine-tuned from one backbone into one ("greedy model soup"), then calibrate and save it.

Models fine-tuned from the same initial weights with different seeds usually sit in one basin of the
loss, and their weight average often ranks better than each of them, at no inference cost (Wortsman
et al., 2022, "Model soups"). Greedy soup: ingredients sorted by DL21 validation nDCG@10, each one kept
only if adding it does not lower the soup's score. DL21 is a training split held out for validation;
DL19/DL20/BEIR are never read. The soup then gets the same Platt calibration and threshold selection as
``train.py``'s output.

    python3 training/soup.py --models /tmp/a/model /tmp/b/model --data .carry/train --out /tmp/soup
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train.py beside this file

import torch  # noqa: E402
import train  # noqa: E402

from ragprune.devices import default_device  # noqa: E402
from ragprune.models import RerankPruneModel, load_tokenizer  # noqa: E402

log = logging.getLogger("soup")


def average(models: list[RerankPruneModel]) -> RerankPruneModel:
    """A copy of the first model holding the element-wise mean of every model's weights."""
    states = [m.state_dict() for m in models]
    soup = RerankPruneModel(models[0].backbone_config, copy.deepcopy(models[0].config))
    soup.load_state_dict({k: torch.stack([s[k].float() for s in states]).mean(0) for k in states[0]})
    return soup.eval()


def _history(model: RerankPruneModel) -> list[dict]:
    """An ingredient's validation history."""
    return model.config.provenance.history


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="model folders (same backbone)")
    parser.add_argument("--data", type=Path, default=Path(".cache/train"), help="build_data.py output")
    parser.add_argument("--out", type=Path, required=True, help="output folder (model/, summary.json)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    args = parser.parse_args(argv)
    # labels, calibration and threshold settings: train.py's defaults
    trained_with = train.parse_args(["--init", str(args.models[0]), "--out", str(args.out)])
    args = argparse.Namespace(**{**vars(trained_with), **vars(args)})
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device(args.device or default_device())

    models = [RerankPruneModel.from_pretrained(folder) for folder in args.models]
    tokenizer = load_tokenizer(args.models[0])
    args.max_length, args.valid_queries = models[0].config.max_length, 0
    data = train.load_training_data(args, tokenizer)

    def score(model: RerankPruneModel) -> float:
        with train.inference_copy(model, tokenizer, device) as pruner:
            return train.validate(pruner, data.valid, data.texts)[0]

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
        "history": [h for i in chosen for h in _history(models[i])],
    }
    summary = train.finish(average([models[i] for i in chosen]), tokenizer, device, data, args, record)
    log.info("%s", json.dumps(summary["soup"]))
    return summary


if __name__ == "__main__":
    main()
