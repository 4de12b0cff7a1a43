"""Time per query of ``process`` in each ranking mode (pointwise, listwise, full), rerank + prune end to end.

Reranks the BM25 top-100 of TREC DL 2019 (43 queries, 4,300 pairs) with the same weights in every mode and
prints a table naming the hardware: milliseconds per query (median of ``--repeats`` runs) and the cost of
each list mode relative to pointwise. The list modes need a list-level head (the shipped model has a
trained one); for a model without one ``--add-untrained-head`` adds a randomly initialised ``listwise``
head, which costs what a trained one costs (the same shapes) but ranks nothing useful: this measures
time only, never quality.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from ragprune.data import load_trec_dl
from ragprune.devices import default_device, describe_hardware
from ragprune.models import RerankPruneModel, load_model
from ragprune.models.config import HeadSpec
from ragprune.pipeline import RerankPruner
from ragprune.pipeline.modes import MODES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument(
        "--add-untrained-head",
        action="store_true",
        help="add a random listwise head to a model that has none (timing only)",
    )
    p.add_argument("--queries", type=int, default=None, help="only the first N queries (quick runs)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/bench")))
    return p.parse_args(argv)


def with_untrained_list_head(model: RerankPruneModel) -> RerankPruneModel:
    """A copy of ``model`` with a randomly initialised ``listwise`` head (gate 1, so it is not skipped)."""
    copy = model.with_head("listwise", HeadSpec("listwise"))
    with torch.no_grad():
        copy.heads["listwise"].gate.fill_(1.0)
    return copy.eval()


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    device = torch.device(args.device or default_device())
    model, tokenizer = load_model(args.model)
    if args.add_untrained_head and not model.heads_reading("candidates"):  # a model without a list head
        model = with_untrained_list_head(model)
    queries, documents = load_trec_dl("dl19").candidates(depth=100)
    queries, documents = queries[: args.queries], documents[: args.queries]
    rows = []
    with RerankPruner(model, tokenizer, device=device, batch_size=args.batch_size, progress=False) as pruner:
        pruner.process(queries[:4], documents[:4], mode="full")  # warm-up: kernels, allocator, workers
        for mode in MODES:
            times = []
            for _ in range(args.repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                results = pruner.process(queries, documents, mode=mode)
                sum(len(p.kept_spans) for r in results for p in r)  # span output is part of the work
                times.append(time.perf_counter() - start)
            rows.append({"mode": mode, "ms_per_query": 1000 * statistics.median(times) / len(queries)})
    base = rows[0]["ms_per_query"]
    lines = [
        f"# process time per query by ranking mode — {describe_hardware(str(device))}, "
        f"torch {torch.__version__}",
        f"TREC DL 2019 BM25 top-100 ({len(queries)} queries, rerank + prune at the default threshold), "
        f"batch {args.batch_size}, median of {args.repeats} runs"
        + (", untrained listwise head (time only)" if args.add_untrained_head else ""),
        "",
        "| mode | ms per query | vs pointwise |",
        "|---|---|---|",
    ] + [f"| {r['mode']} | {r['ms_per_query']:.1f} | {r['ms_per_query'] / base - 1:+.1%} |" for r in rows]
    table = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_modes.md").write_text(table + "\n")
    (args.out / "bench_modes.json").write_text(json.dumps(rows, indent=2))
    print(table)
    return rows


if __name__ == "__main__":
    main()
