"""Throughput of ``RerankPruner.process`` end to end: tokenization, sentence splitting, the encoder,
sentence scoring and span output, on (query, passage) pairs of about 256 tokens built from real
MS MARCO passages (TREC DL 2019 candidates).

Prints a table naming the hardware: pairs/s per batch size, and the share of GPU time spent after the
encoder (rank head + sentence scoring) with the Triton kernel and with the eager torch path; then the host
work per pair by stage, measured in one thread on this machine's CPU with the device work stubbed out
(``host_costs``). ``--host-only`` measures just the latter (quick on a CPU-only machine):

    python eval/bench_process.py --host-only --host-pairs 2000

``--host-scaling 1,4,8,15`` measures instead the pairs/s the host alone sustains (device work stubbed out)
with each count of preparation workers: whether this machine's CPU can feed a GPU at a given rate.

With ``--engine ray`` or ``--engine local`` it measures scale-out instead (``ragprune.distributed``): the
same pairs through ``rerank_prune`` with each worker count of ``--workers`` (default ``1,N``, N = the GPUs
here, or 2 CPU workers), and prints pairs/s end to end (worker start-up included), pairs/s once the
workers run, the speed-up over the first worker count, and whether the outputs equal the first's (max
score difference, spans identical). On a 2-GPU machine, e.g.:

    python eval/bench_process.py --engine ray --workers 1,2 --pairs 100000
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ragprune.data import load_trec_dl
from ragprune.devices import default_device, describe_hardware
from ragprune.kernels import SentenceScores
from ragprune.models import load_model
from ragprune.pipeline import RerankPruner
from ragprune.pipeline.encoding import tokenize_texts
from ragprune.text import sentence_bounds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--pairs", type=int, default=20000, help="pairs per timed run")
    p.add_argument("--words", type=int, default=170, help="words per passage (~230 tokens with the query)")
    p.add_argument("--batch-sizes", default="128,256,512")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per configuration (median reported)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/bench")))
    p.add_argument(
        "--profile",
        action="store_true",
        help="also write a torch profiler table (CPU and GPU time per op) of one run per backend",
    )
    p.add_argument(
        "--prepare-workers",
        type=int,
        default=None,
        help="row-preparation worker processes (default: the pipeline's, cpu_count - 1 next to a GPU)",
    )
    p.add_argument("--host-pairs", type=int, default=2000, help="pairs for the host-cost measurement")
    p.add_argument(
        "--host-only",
        action="store_true",
        help="only measure the host work per pair (one thread, device work stubbed out)",
    )
    p.add_argument(
        "--host-scaling",
        default=None,
        metavar="W1,W2,...",
        help="only measure the pairs/s the host sustains with these counts of preparation workers, device "
        "work stubbed out (e.g. 1,4,8,15: can this machine's CPU feed the GPU at the target rate?)",
    )
    p.add_argument(
        "--engine",
        choices=("ray", "local"),
        default=None,
        help="measure scale-out through ragprune.distributed with this engine (default: process in this "
        "process, per batch size and scoring backend)",
    )
    p.add_argument(
        "--workers",
        default=None,
        help="with --engine: comma-separated worker counts to compare (default 1,N with N the GPUs here, "
        "or 1,2 on CPU)",
    )
    p.add_argument(
        "--queries-per-batch",
        type=int,
        default=2,
        help="with --engine: whole queries per worker batch (~470 pairs per query at --pairs 20000)",
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


@contextmanager
def _one_thread():
    """One torch thread and no tokenizer threads: the cost of a stage as one worker pays it."""
    threads, parallelism = torch.get_num_threads(), os.environ.get("TOKENIZERS_PARALLELISM")
    torch.set_num_threads(1)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if parallelism is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = parallelism


def _best_ms_per_pair(work, pairs: int, runs: int = 3) -> float:
    """Milliseconds per pair of ``work()``: the best of ``runs`` runs after a warm-up run."""
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return 1000 * min(times[1:]) / pairs


def host_costs(model, tokenizer, queries, passages, pairs: int, batch_size: int) -> dict[str, float]:
    """Milliseconds per pair of the host work of ``process`` (inputs in, result objects and kept spans
    out) in one thread on the CPU, with the device work stubbed out: the encoder returns zeros and the
    sentence scoring zeros (on a GPU both run there, overlapped with this work).

    - ``preparation``: tokenizing, sentence splitting and laying out rows (what each preparation worker
      process pays per pair), with its parts ``tokenization`` (the Rust tokenizer's batch call into flat
      arrays) and ``sentence_splitting``;
    - ``calling_process``: the rest, in the process that drives the device (inputs checked, pairs
      deduplicated, batches padded, outputs read back, result objects built, kept spans read);
    - ``total``: both, the host work per pair with one core.
    """
    per_query = max(1, pairs // len(queries))
    groups = [group[:per_query] for group in passages][: -(-pairs // per_query)]
    texts = [text for group in groups for text in group]
    pruner = _stub_pruner(model, tokenizer, batch_size, workers=0)
    shards, preparing = pruner.preparer.shards, []

    def timed_shards(*args):
        """The preparer's shards, timing the work of producing each."""
        stream = shards(*args)
        while True:
            start = time.perf_counter()
            shard = next(stream, None)
            preparing[-1] += time.perf_counter() - start
            if shard is None:
                return
            yield shard

    pruner.preparer.shards = timed_shards  # type: ignore[method-assign]

    def run() -> None:
        preparing.append(0.0)
        results = pruner.process(queries[: len(groups)], groups)
        sum(len(p.kept_spans) for r in results for p in r)

    n = len(texts)
    with _one_thread():
        runs = []
        for _ in range(4):  # a warm-up run, then the best of three (its preparation time with it)
            start = time.perf_counter()
            run()
            runs.append((1000 * (time.perf_counter() - start) / n, 1000 * preparing[-1] / n))
        total, preparation = min(runs[1:])
        return {
            "tokenization": _best_ms_per_pair(lambda: tokenize_texts(tokenizer, texts), n),
            "sentence_splitting": _best_ms_per_pair(lambda: [sentence_bounds(text) for text in texts], n),
            "preparation": preparation,
            "calling_process": total - preparation,
            "total": total,
        }


def _stub_pruner(model, tokenizer, batch_size: int, workers: int) -> RerankPruner:
    """A CPU ``RerankPruner`` on a copy of ``model`` whose device work is stubbed out (the encoder returns
    zeros, sentence scoring zeros), with ``workers`` preparation processes: what is left is host work."""
    stub = copy.deepcopy(model)  # never the caller's model: the benchmark's other runs use it
    hidden = torch.zeros(1, 1, stub.backbone_config.hidden_size)
    stub.encode = lambda ids, mask, types: hidden.expand(ids.shape[0], ids.shape[1], hidden.shape[-1])
    pruner = RerankPruner(
        stub, tokenizer, device="cpu", batch_size=batch_size, prepare_workers=workers, progress=False
    )
    pruner.runner._score_sentences = lambda hidden, ids, counts, threshold: SentenceScores(
        torch.zeros(int(counts.sum())), torch.zeros(int(counts.sum()), dtype=torch.bool)
    )
    return pruner


def host_scaling(model, tokenizer, queries, passages, workers: list[int], batch_size: int) -> list[dict]:
    """Pairs/s the host alone sustains with each count of preparation worker processes, the device work
    stubbed out (best of 3 runs after a warm-up): ``preparation`` (the worker pool's prepared shards,
    consumed and dropped) and ``process`` (the whole ``process`` call). Whether the CPU of this machine can
    feed the GPU at a given rate, independently of the GPU."""
    n = sum(len(group) for group in passages)
    encoded = tokenizer(list(queries), add_special_tokens=False)["input_ids"]
    query_ids = [np.asarray(ids, dtype=np.int64) for ids, group in zip(encoded, passages) for _ in group]
    texts = [text for group in passages for text in group]

    def prepare(pruner: RerankPruner) -> None:
        for _ in pruner.preparer.shards(query_ids, texts, [""] * len(texts)):
            pass

    def run(pruner: RerankPruner) -> None:
        results = pruner.process(queries, passages)
        sum(len(p.kept_spans) for r in results for p in r)

    rows = []
    for count in workers:
        with _stub_pruner(model, tokenizer, batch_size, count) as pruner:
            rows.append(
                {
                    "workers": count,
                    "preparation": 1000 / _best_ms_per_pair(partial(prepare, pruner), n),
                    "process": 1000 / _best_ms_per_pair(partial(run, pruner), n),
                }
            )
        print(json.dumps(rows[-1]))
    return rows


def scaling_table(rows: list[dict], pairs: int) -> list[str]:
    """The host-scaling table's lines (markdown), naming the CPU."""
    return [
        f"Host alone, device work stubbed out, {pairs} pairs on {describe_hardware('cpu')} "
        "(pairs/s, best of 3 runs):",
        "",
        "| preparation workers | preparation pool alone | process, whole call |",
        "|---|---|---|",
        *(f"| {r['workers']} | {r['preparation']:.0f} | {r['process']:.0f} |" for r in rows),
    ]


HOST_STAGES = {
    "tokenization": "preparation: tokenization (Rust batch call into flat arrays)",
    "sentence_splitting": "preparation: sentence splitting",
    "preparation": "preparation, all (tokens, sentences, rows; per worker process)",
    "calling_process": "calling process (inputs, pairs, padding, read-back, results, kept spans)",
    "total": "host total (one core)",
}


def host_table(costs: dict[str, float], pairs: int) -> list[str]:
    """The host-cost table's lines (markdown), naming the CPU."""
    return [
        f"Host work of process per pair, one thread on {describe_hardware('cpu')}, device work stubbed out "
        f"({pairs} pairs, best of 3 runs; a shared machine's load shows in these numbers):",
        "",
        "| host stage | ms per pair |",
        "|---|---|",
        *(f"| {label} | {costs[key]:.4f} |" for key, label in HOST_STAGES.items()),
    ]


def engine_bench(args: argparse.Namespace) -> list[dict]:
    """``--engine``: pairs/s of ``rerank_prune`` per worker count, with the outputs checked against the
    first worker count's (ids, scores to 1e-3, kept spans exactly)."""
    from ragprune.data import read_run
    from ragprune.distributed import rerank_prune
    from ragprune.distributed.tasks import QueryTask, RerankInput
    from ragprune.types import Document

    gpus = torch.cuda.device_count() if torch.cuda.is_available() and args.device != "cpu" else 0
    device = "cuda" if gpus else "cpu"
    counts = [int(w) for w in (args.workers or f"1,{max(gpus, 2)}").split(",")]
    hardware = describe_hardware("cuda:0" if gpus else "cpu") + (f" x {gpus} GPUs here" if gpus else "")
    queries, passages = build_pairs(args.pairs, args.words)
    tasks = tuple(
        QueryTask(
            f"q{i}",
            query,
            tuple(Document(f"d{i}_{j}", text) for j, text in enumerate(group)),
            {f"d{i}_{j}": -float(j) for j in range(len(group))},
        )
        for i, (query, group) in enumerate(zip(queries, passages))
    )
    source = RerankInput(tasks, top_k=max(task.pairs for task in tasks), has_scores=False)
    batch_size = max(int(b) for b in args.batch_sizes.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.engine == "ray":  # one Ray instance for every run (rerank_prune joins it)
        from ragprune.distributed.ray_engine import import_ray

        import_ray().init(include_dashboard=False)
    rows: list[dict] = []
    reference: tuple[dict, list] | None = None
    for count in counts:
        summaries = []
        for repeat in range(args.repeats):
            run_path = args.out / f"{args.engine}_{count}.trec"
            pruned_path = args.out / f"{args.engine}_{count}.jsonl"
            summaries.append(
                rerank_prune(
                    source,
                    run_path,
                    pruned_path if repeat == 0 else None,
                    engine=args.engine,
                    workers=count,
                    model=args.model,
                    device=device,
                    batch_size=batch_size,
                    queries_per_batch=args.queries_per_batch,
                )
            )
        run = read_run(run_path)
        spans = [
            [p["kept_spans"] for p in json.loads(line)["passages"]]
            for line in (args.out / f"{args.engine}_{count}.jsonl").read_text().splitlines()
        ]
        if reference is None:
            reference = (run, spans)
        same_ids = {q: sorted(d) for q, d in run.items()} == {q: sorted(d) for q, d in reference[0].items()}
        diff = max(abs(s - reference[0][q].get(d, float("inf"))) for q in run for d, s in run[q].items())
        steady = sorted(summary.steady_pairs_per_second for summary in summaries)
        rows.append(
            {
                "engine": args.engine,
                "workers": count,
                "pairs": source.pairs,
                "pairs_per_second_end_to_end": sorted(x.pairs_per_second for x in summaries)[
                    len(summaries) // 2
                ],
                "pairs_per_second_steady": steady[len(steady) // 2],
                "pairs_per_second_steady_runs": steady,
                "max_score_diff_vs_first": diff,
                "same_ids_and_spans_as_first": same_ids and spans == reference[1],
            }
        )
        print(json.dumps(rows[-1]))
    base = rows[0]["pairs_per_second_steady"] or 1.0
    lines = [
        f"# rerank_prune scale-out, engine {args.engine} — {hardware}, torch {torch.__version__}",
        f"{source.pairs} pairs ({len(tasks)} queries, {args.queries_per_batch} per worker batch, "
        f"encoder batch {batch_size}), model {args.model or 'default'}, default threshold, device "
        f"{device}; pairs/s: median of {args.repeats} runs; end to end includes worker start-up (model "
        "loads), steady leaves out the time to the first query written",
        "",
        "| workers | pairs/s end to end | pairs/s steady | min-max steady | speed-up (steady) "
        "| max score diff vs first | same ids + spans |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        runs = r["pairs_per_second_steady_runs"]
        lines.append(
            f"| {r['workers']} | {r['pairs_per_second_end_to_end']:.0f} | "
            f"{r['pairs_per_second_steady']:.0f} | "
            f"{runs[0]:.0f}-{runs[-1]:.0f} | {r['pairs_per_second_steady'] / base:.2f}x | "
            f"{r['max_score_diff_vs_first']:.2e} | {'yes' if r['same_ids_and_spans_as_first'] else 'NO'} |"
        )
    table = "\n".join(lines)
    (args.out / f"bench_scaleout_{args.engine}.md").write_text(table + "\n")
    (args.out / f"bench_scaleout_{args.engine}.json").write_text(
        json.dumps({"hardware": hardware, "rows": rows}, indent=2)
    )
    print(table)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.engine is not None:
        return engine_bench(args)
    device = torch.device(args.device or default_device())
    hardware = describe_hardware(str(device))
    queries, passages = build_pairs(max(args.pairs, args.host_pairs), args.words)
    model, tokenizer = load_model(args.model)  # read once; each configuration wraps the same weights
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.host_scaling:
        counts = [int(w) for w in args.host_scaling.split(",")]
        queries, passages = build_pairs(args.pairs, args.words)
        scaling = host_scaling(model, tokenizer, queries, passages, counts, max(batch_sizes))
        table = "\n".join(scaling_table(scaling, sum(len(p) for p in passages)))
        (args.out / "bench_process_host_scaling.md").write_text(table + "\n")
        print(table)
        return scaling
    host = host_costs(model, tokenizer, queries, passages, args.host_pairs, max(batch_sizes))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.host_only:
        table = "\n".join(host_table(host, args.host_pairs))
        (args.out / "bench_process_host.md").write_text(table + "\n")
        (args.out / "bench_process_host.json").write_text(json.dumps({"host_ms_per_pair": host}, indent=2))
        print(table)
        return [host]
    queries, passages = build_pairs(args.pairs, args.words)
    n_pairs = sum(len(p) for p in passages)
    rows = []
    backends = ("triton", "torch") if device.type == "cuda" else ("torch",)
    for backend in backends:
        for batch_size in batch_sizes:
            pruner = RerankPruner(
                model,
                tokenizer,
                device=device,
                batch_size=batch_size,
                scoring_backend=backend,
                time_stages=True,
                progress=False,
                prepare_workers=args.prepare_workers,
            )
            with pruner:
                # warm-up over a tenth of the pairs: kernels compiled, clocks up, allocator primed
                timed_run(pruner, queries[: len(queries) // 10 + 1], passages[: len(passages) // 10 + 1])
                pruner.stage_timer.reset()
                runs = [timed_run(pruner, queries, passages) for _ in range(args.repeats)]
                stages = {k: v / args.repeats for k, v in pruner.stage_timer.milliseconds().items()}
                if args.profile and batch_size == max(batch_sizes):
                    write_profile(pruner, queries, passages, args.out / f"profile_{backend}.txt")
            rates = sorted(n_pairs / seconds for seconds, _, _ in runs)
            gpu_ms = stages.get("encoder", 0.0) + stages.get("scoring", 0.0)
            rows.append(
                {
                    "backend": backend,
                    "batch_size": batch_size,
                    "pairs": n_pairs,
                    "pairs_per_second": rates[len(rates) // 2],
                    "pairs_per_second_runs": rates,
                    "encoder_ms": stages.get("encoder", 0.0),
                    "scoring_ms": stages.get("scoring", 0.0),
                    "post_encoder_share": stages.get("scoring", 0.0) / gpu_ms if gpu_ms else 0.0,
                    "mean_compression": runs[-1][2],
                }
            )
            print(json.dumps(rows[-1]))
    tokens = tokenizer([queries[0]], [passages[0][0]])["input_ids"][0]
    lines = [
        f"# process throughput — {hardware}, torch {torch.__version__}",
        f"{n_pairs} pairs, ~{len(tokens)} tokens per pair (query + passage + specials), "
        f"model {args.model or 'default'}, default threshold; pairs/s: median of {args.repeats} runs "
        "(min-max); stage times: means per run, from CUDA events on a GPU (they include host gaps "
        "inside a stage)",
        "",
        "| scoring backend | batch | pairs/s (end to end) | min-max | encoder ms | after-encoder ms "
        "| after-encoder share |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        runs = r["pairs_per_second_runs"]
        lines.append(
            f"| {r['backend']} | {r['batch_size']} | {r['pairs_per_second']:.0f} | "
            f"{runs[0]:.0f}-{runs[-1]:.0f} | {r['encoder_ms']:.0f} | {r['scoring_ms']:.0f} | "
            f"{100 * r['post_encoder_share']:.1f}% |"
        )
    lines += ["", *host_table(host, args.host_pairs)]
    table = "\n".join(lines)
    (args.out / "bench_process.md").write_text(table + "\n")
    summary = {"hardware": hardware, "rows": rows, "host_ms_per_pair": host}
    (args.out / "bench_process.json").write_text(json.dumps(summary, indent=2))
    print(table)
    return rows


if __name__ == "__main__":
    main()
