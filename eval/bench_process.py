"""Throughput of ``RerankPruner.process`` end to end: tokenization, sentence splitting, the encoder,
sentence scoring and span output, on (query, passage) pairs of about 256 tokens built from real
MS MARCO passages (TREC DL 2019 candidates).

Prints a table naming the hardware: pairs/s per batch size, and the share of GPU time spent after the
encoder (rank head + sentence scoring) with the Triton kernel and with the eager torch path.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from ragprune.data import load_trec_dl
from ragprune.devices import default_device, describe_hardware
from ragprune.models import load_model
from ragprune.pipeline import RerankPruner


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--pairs", type=int, default=20000, help="pairs per timed run")
    p.add_argument("--words", type=int, default=170, help="words per passage (~230 tokens with the query)")
    p.add_argument("--batch-sizes", default="128,256,512")
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/bench")))
    p.add_argument(
        "--profile",
        action="store_true",
        help="also write a torch profiler table (CPU and GPU time per op) of one run per backend",
    )
    return p.parse_args(argv)


def build_pairs(n: int, words: int) -> tuple[list[str], list[list[str]]]:
    """Queries with passages of ``words`` words, cut from consecutive DL19 candidate passages."""
    dl = load_trec_dl("dl19")
    stream = " ".join(dl.passages[pid] for pid in sorted(dl.passages)).split()
    queries = [dl.topics[qid] for qid in sorted(dl.topics)]
    passages = [" ".join(stream[(i * words) % (len(stream) - words) :][:words]) for i in range(n)]
    per_query = max(1, n // len(queries))
    grouped = [passages[i : i + per_query] for i in range(0, n, per_query)]
    return [queries[i % len(queries)] for i in range(len(grouped))], grouped


def timed_run(pruner: RerankPruner, queries, passages) -> tuple[float, int, float]:
    if pruner.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    results = pruner.process(queries, passages)
    kept = sum(len(p.kept_spans) for r in results for p in r)  # span output is part of the work
    seconds = time.perf_counter() - start
    compression = sum(p.compression for r in results for p in r) / max(1, sum(len(r) for r in results))
    return seconds, kept, compression


def write_profile(pruner: RerankPruner, queries, passages, path: Path) -> None:
    """Ops by total CPU time and by total GPU time over one ``process`` call: where the wall time goes."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if pruner.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        timed_run(pruner, queries, passages)
    averages = prof.key_averages()
    tables = [averages.table(sort_by="cpu_time_total", row_limit=30)]
    if pruner.device.type == "cuda":
        tables.append(averages.table(sort_by="cuda_time_total", row_limit=30))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(tables))


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    device = torch.device(args.device or default_device())
    hardware = describe_hardware(str(device))
    queries, passages = build_pairs(args.pairs, args.words)
    n_pairs = sum(len(p) for p in passages)
    model, tokenizer = load_model(args.model)  # read once; each configuration wraps the same weights
    rows = []
    backends = ("triton", "torch") if device.type == "cuda" else ("torch",)
    for backend in backends:
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            pruner = RerankPruner(
                model,
                tokenizer,
                device=device,
                batch_size=batch_size,
                scoring_backend=backend,
                time_stages=True,
                progress=False,
            )
            # warm-up over a tenth of the pairs: kernels compiled, clocks up, allocator primed
            with pruner:
                timed_run(pruner, queries[: len(queries) // 10 + 1], passages[: len(passages) // 10 + 1])
                pruner.stage_timer.reset()
                seconds, _, compression = timed_run(pruner, queries, passages)
                if args.profile and batch_size == max(int(b) for b in args.batch_sizes.split(",")):
                    write_profile(pruner, queries, passages, args.out / f"profile_{backend}.txt")
            stages = pruner.stage_timer.milliseconds()
            gpu_ms = stages.get("encoder", 0.0) + stages.get("scoring", 0.0)
            rows.append(
                {
                    "backend": backend,
                    "batch_size": batch_size,
                    "pairs": n_pairs,
                    "seconds": seconds,
                    "pairs_per_second": n_pairs / seconds,
                    "encoder_ms": stages.get("encoder", 0.0),
                    "scoring_ms": stages.get("scoring", 0.0),
                    "post_encoder_share": stages.get("scoring", 0.0) / gpu_ms if gpu_ms else 0.0,
                    "mean_compression": compression,
                }
            )
            print(json.dumps(rows[-1]))
    tokens = pruner.tokenizer([queries[0]], [passages[0][0]])["input_ids"][0]
    lines = [
        f"# process throughput — {hardware}, torch {torch.__version__}",
        f"{n_pairs} pairs, ~{len(tokens)} tokens per pair (query + passage + specials), "
        f"model {args.model or 'default'}",
        "",
        "| scoring backend | batch | pairs/s (end to end) | encoder ms | after-encoder ms "
        "| after-encoder share |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['batch_size']} | {r['pairs_per_second']:.0f} | {r['encoder_ms']:.0f} | "
            f"{r['scoring_ms']:.0f} | {100 * r['post_encoder_share']:.1f}% |"
        )
    table = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_process.md").write_text(table + "\n")
    (args.out / "bench_process.json").write_text(json.dumps({"hardware": hardware, "rows": rows}, indent=2))
    print(table)
    return rows


if __name__ == "__main__":
    main()
