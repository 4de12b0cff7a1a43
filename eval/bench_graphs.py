"""Pairs/s of the encoder + heads + sentence scoring on CUDA: eager with transformers' own mask, eager with
the 4-D mask (no host synchronisation), and replayed CUDA graphs (``ragprune.pipeline.graphs``).

Tokenizes the first ``--pairs`` (query, passage) pairs of the TREC DL 2019 BM25 top-100 once, then times
the pipeline's stage runner on them (``weight_pruning.measure.score_pairs``, as ``RerankPruner.process``
runs it after tokenization) for each model and batch size: best of ``--repeats`` passes after two warm-up
passes (a shape's graph is captured the second time it is seen). Prints a table naming the GPU, with each
mode's largest rank-logit difference from the first mode, the share of sentence decisions that agree with
it, and the graphs captured (batches replayed / run eagerly in the last pass). Needs CUDA.

    python eval/bench_graphs.py [--model DIR ...] [--batch-sizes 256 1024] [--out eval/results]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ragprune.data import load_trec_dl
from ragprune.devices import describe_hardware
from ragprune.models import RerankPruneModel, load_model
from ragprune.pipeline.graphs import EncoderGraphs
from ragprune.pipeline.runner import PairColumns
from ragprune.weight_pruning.measure import PreparedPairs, inference_copy, prepare_pairs_once, score_pairs

MODES = ("eager, transformers' mask", "eager, 4-D mask", "CUDA graphs")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", nargs="+", default=["default"], help="model folders ('default': the shipped)")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[256, 1024])
    p.add_argument("--pairs", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="also write bench_graphs_<gpu>.md/.json here")
    return p.parse_args(argv)


def run_once(model: RerankPruneModel, pairs: PreparedPairs, batch_size: int, mode: str, graphs: Any) -> Any:
    """One pass of the stage runner over ``pairs`` in ``mode`` (``graphs``: the model's captured graphs)."""
    replay = mode == MODES[2]
    return score_pairs(
        model,
        pairs,
        "cuda",
        batch_size=batch_size,
        ready=True,
        graphs=graphs if replay else None,
        cuda_graphs=replay,
    )


def time_mode(
    model: RerankPruneModel, pairs: PreparedPairs, batch_size: int, mode: str, repeats: int
) -> tuple[PairColumns, float, dict[str, int]]:
    """The outputs, the best pairs/s of ``repeats`` passes (after two warm-up passes) in ``mode``, and the
    graphs captured, batches replayed and batches run eagerly in the last pass."""
    original = type(model).takes_4d_mask
    if mode == MODES[0]:  # the 2-D mask transformers checks on the host
        type(model).takes_4d_mask = property(lambda self: False)  # type: ignore[method-assign,assignment]
    try:
        graphs = EncoderGraphs(model)
        for _ in range(2):  # a shape is captured when seen the second time
            run_once(model, pairs, batch_size, mode, graphs)
        best = float("inf")
        for _ in range(repeats):
            torch.cuda.synchronize()
            before = (graphs.replayed, graphs.eager)
            start = time.perf_counter()
            columns = run_once(model, pairs, batch_size, mode, graphs)  # the last pass's outputs: replayed
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        if mode == MODES[2] and graphs.disabled:
            raise RuntimeError(f"CUDA graphs were turned off: {graphs.disabled}")
    finally:
        type(model).takes_4d_mask = original  # type: ignore[method-assign]
    counts = {
        "graphs": len(graphs.graphs),
        "replayed_batches": graphs.replayed - before[0],
        "eager_batches": graphs.eager - before[1],
    }
    return columns, len(pairs) / best, counts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    if not torch.cuda.is_available():
        raise SystemExit("bench_graphs.py needs a CUDA GPU")
    dl = load_trec_dl("dl19")
    qids = sorted(dl.run)
    queries = [dl.topics[q] for q in qids]
    chosen = [(i, dl.passages[p], "") for i, q in enumerate(qids) for p in dl.run[q]][: args.pairs]
    rows = []
    for name in args.model:
        model, tokenizer = load_model(None if name == "default" else name)
        pairs = prepare_pairs_once(tokenizer, model.config.max_length, queries, chosen)
        ready = inference_copy(model, "cuda")
        for batch_size in args.batch_sizes:
            reference = None
            for mode in MODES:
                columns, rate, counts = time_mode(ready, pairs, batch_size, mode, args.repeats)
                reference = reference or columns
                rows.append(
                    {
                        "model": name,
                        "layers": model.backbone_config.num_hidden_layers,
                        "batch_size": batch_size,
                        "mode": mode,
                        "pairs_per_s": rate,
                        "max_logit_difference": float(
                            np.abs(columns.scores["rank"] - reference.scores["rank"]).max()
                        ),
                        "decisions_agree": float((columns.sentence_kept == reference.sentence_kept).mean()),
                        **(counts if mode == MODES[2] else {}),
                    }
                )
    gpu = describe_hardware("cuda")
    lines = [
        f"# Encoder forward: eager vs CUDA graphs ({gpu})\n",
        f"`eval/bench_graphs.py`: {len(chosen)} DL19 BM25 pairs tokenized once; encoder + heads + sentence "
        f"scoring (the stage runner of `RerankPruner.process`), bf16; best of {args.repeats} passes after "
        "two warm-up passes. Differences against the first mode of the same model and batch size.\n",
        "| model | layers | batch rows | mode | pairs/s | max abs rank-logit diff | decisions agree | graphs "
        "(batches replayed / eager) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['layers']} | {r['batch_size']} | {r['mode']} | {r['pairs_per_s']:,.0f} | "
        f"{r['max_logit_difference']:.4f} | {r['decisions_agree']:.4f} | "
        + (f"{r['graphs']} ({r['replayed_batches']} / {r['eager_batches']})" if "graphs" in r else "")
        + " |"
        for r in rows
    ]
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"bench_graphs_{gpu.split()[-1].lower()}"
        stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
        stem.with_suffix(".json").write_text(json.dumps({"gpu": gpu, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
