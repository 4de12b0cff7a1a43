"""Train the listwise head of a rerank + prune model (``--mode listwise`` / ``--mode full``) on its frozen
pointwise pass, from the training data of ``build_data.py`` (teacher scores over every candidate list).

Read top to bottom: load the model and the data; encode every training query's candidates and DL21's
validation lists once (``ragprune.training.list_head.candidate_lists``); train the head on those vectors
(``train_list_head``: listwise KL, FIRST's rank-weighted RankNet, full ranking's top-weighted ListMLE;
windows of 20 and whole lists, shuffled); keep the epoch with the best DL21 nDCG@10 averaged over the
``listwise`` and ``full`` modes; save the model with the head added (fp16, as ``train.py`` saves) and
``summary.json`` (every epoch's DL21 numbers, pointwise beside them). DL21 is a training split held out
for validation; DL19/DL20/BEIR are never read.

    python training/train_list_head.py --model ragprune/models/default --data .cache/train --out runs/list
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import time
from pathlib import Path

import torch

from ragprune.devices import default_device
from ragprune.models import load_model
from ragprune.models.config import HeadSpec
from ragprune.pipeline import RerankPruner
from ragprune.training.files import GROUPS, POOL, VALID_DL21, read_jsonl
from ragprune.training.list_head import ListHeadConfig, candidate_lists, train_list_head
from ragprune.training.validation import RankingValidator

log = logging.getLogger("train_list_head")
HEAD_NAME = "listwise"


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, ListHeadConfig]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="ragprune model folder (kept frozen)")
    parser.add_argument("--data", type=Path, required=True, help="folder written by build_data.py")
    parser.add_argument("--out", type=Path, required=True, help="output folder (model/, summary.json)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--batch-size", type=int, default=256, help="encoder rows per batch")
    parser.add_argument("--max-queries", type=int, default=0, help="training queries to use (0: all)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="file of the encoded candidate lists: read if it exists (same model, data and --max-queries), "
        "else written, so that several head settings share one encoder pass",
    )
    for field in dataclasses.fields(ListHeadConfig):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
        )
    args = parser.parse_args(argv)
    config = ListHeadConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ListHeadConfig)})
    return args, config


def main(argv: list[str] | None = None) -> dict:
    args, config = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(args.out / "train_list_head.log")],
    )
    log.info("config: %s", config.to_dict())
    device = torch.device(args.device or default_device())
    start = time.time()

    # ---- model, data, candidate vectors from one frozen pointwise pass --------------------------------
    model, tokenizer = load_model(args.model)
    texts = {p["pid"]: p["text"] for p in read_jsonl(args.data / POOL)}
    groups = read_jsonl(args.data / GROUPS)
    if args.max_queries:
        groups = random.Random(config.seed).sample(groups, min(args.max_queries, len(groups)))
    valid_records = read_jsonl(args.data / VALID_DL21)
    validator = RankingValidator.from_records(valid_records)
    if args.cache is not None and args.cache.is_file():
        train, valid = torch.load(args.cache, weights_only=False)
    else:
        with RerankPruner(
            model, tokenizer, device=device, batch_size=args.batch_size, progress=False
        ) as pruner:
            train = candidate_lists(pruner, groups, texts)
            valid = candidate_lists(pruner, valid_records, texts)
        if args.cache is not None:
            torch.save((train, valid), args.cache)
    encode_s = time.time() - start
    log.info("%d training lists, %d validation lists encoded in %.0f s", len(train), len(valid), encode_s)

    # ---- train the head, keep the best epoch, save --------------------------------------------------
    head, history = train_list_head(
        train, valid, validator, model.backbone_config.hidden_size, config, device
    )
    if HEAD_NAME in model.config.heads:
        log.info("replacing the model's %r head", HEAD_NAME)
        model = model.without_heads([HEAD_NAME])
    with_head = model.with_head(HEAD_NAME, HeadSpec("listwise", config.head_options()))
    with_head.heads[HEAD_NAME].load_state_dict(head.state_dict())
    best = max(
        history[1:],
        key=lambda r: (r["dl21_ndcg@10_full"] + r["dl21_ndcg@10_listwise"]) / 2,
        default=history[0],
    )
    summary = {
        "model": str(args.model),
        "config": config.to_dict(),
        "training_lists": len(train),
        "validation_lists": len(valid),
        "history": history,
        "best": best,
        "seconds": {"encode": round(encode_s, 1), "total": round(time.time() - start, 1)},
    }
    with_head.config.provenance.history.append({"list_head": summary})
    with_head.cpu().save_pretrained(args.out / "model", tokenizer, dtype=torch.float16)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log.info("saved %s: best %s", args.out / "model", best)
    return summary


if __name__ == "__main__":
    main()
