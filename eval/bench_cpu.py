"""CPU benchmark: fp32 vs dynamic int8 (``RerankPruner(precision=...)``, ``ragprune.pipeline.precision``).

Prints (and with ``--out`` writes) a markdown table naming the hardware:

* pairs/s: rerank + prune (default threshold, ``fusion="none"``) of the first ``--speed-queries`` DL19
  queries' BM25 top-100, end to end from strings to results; fp32 and int8 alternated, ``--repeats``
  runs each, the median reported (a warm-up query each first);
* DL19 nDCG@10 over all 43 judged queries (BM25 top-100 reranked, ``fusion="none"``) and the mean
  absolute difference of the int8 logits from the fp32 ones on those pairs;
* WikiQA dev (answerable) sentence recall and removed share at the model's default threshold
  (``eval/evaluate.py``'s data and measures).

    python eval/bench_cpu.py --out eval/results/bench_cpu.md
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

import torch

from ragprune.data import data_root, load_trec_dl, read_pruning_jsonl
from ragprune.devices import describe_hardware
from ragprune.evaluation import evaluate_run
from ragprune.evaluation.pruning import context_text, score_pruning
from ragprune.pipeline import RerankPruner
from ragprune.pipeline.precision import PRECISIONS
from ragprune.pipeline.rerank_run import rerank_run
from ragprune.types import Document

WIKIQA = "WikiQA dev (answerable)"


def _evaluate_module() -> ModuleType:
    """``eval/evaluate.py`` (its pruning sets and helpers are reused, not copied)."""
    spec = importlib.util.spec_from_file_location(
        "ragprune_evaluate", Path(__file__).with_name("evaluate.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--speed-queries", type=int, default=10, help="DL19 queries timed (default 10)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per precision (default 3; 0: quality only)"
    )
    parser.add_argument("--skip-full-dl19", action="store_true", help="no nDCG@10 over all 43 DL19 queries")
    parser.add_argument("--skip-wikiqa", action="store_true", help="no WikiQA pruning recall")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here (markdown)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    dl19 = load_trec_dl("dl19")
    queries, documents = dl19.candidates(depth=100)
    pruners = {p: RerankPruner.load(args.model, device="cpu", precision=p) for p in PRECISIONS}
    speed_queries, speed_documents = queries[: args.speed_queries], documents[: args.speed_queries]

    speed_logits: dict[str, dict[str, dict[str, float]]] = {}

    def timed(precision: str, pruner: RerankPruner) -> tuple[float, int]:
        start = time.perf_counter()
        results = pruner.process(speed_queries, speed_documents)
        seconds = time.perf_counter() - start
        speed_logits[precision] = {
            query.id: {p.document.id: result.ranking_score(p) for p in result}
            for query, result in zip(speed_queries, results)
        }
        return seconds, sum(len(r) for r in results)

    for pruner in pruners.values():  # warm-up
        pruner.process(queries[0], documents[0][:8])
    rates: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for repeat in range(args.repeats):
        for precision, pruner in pruners.items():  # alternated: load changes hit both alike
            seconds, pairs = timed(precision, pruner)
            rates[precision].append(pairs / seconds)
            print(f"run {repeat + 1} {precision}: {pairs} pairs, {pairs / seconds:.1f} pairs/s", flush=True)
    speed = {p: statistics.median(r) if r else float("nan") for p, r in rates.items()}

    ndcg: dict[str, float] = {}
    logits: dict[str, dict[str, dict[str, float]]] = {}
    subset: dict[str, float] = {}
    if speed_logits:  # nDCG@10 of the timed runs themselves (their queries only, fusion none)
        judged = {q.id: dl19.qrels[q.id] for q in speed_queries if q.id in dl19.qrels}
        for precision, run in speed_logits.items():
            subset[precision] = evaluate_run(judged, run, ("nDCG@10",)).aggregate["nDCG@10"]
            print(f"DL19 nDCG@10 {precision} on the {len(judged)} timed queries: {subset[precision]:.4f}")
        logits = speed_logits
    if not args.skip_full_dl19:
        judged = {qid: dl19.qrels[qid] for qid in dl19.qrels if qid in dl19.run}
        corpus = {pid: Document(pid, text) for pid, text in dl19.passages.items()}
        for precision, pruner in pruners.items():
            reranked = rerank_run(pruner, dl19.topics, dl19.run, corpus, top_k=100, fusion="none")
            logits[precision] = reranked.run  # all 43 queries replace the timed subset
            ndcg[precision] = evaluate_run(judged, reranked.run, ("nDCG@10",)).aggregate["nDCG@10"]
            print(f"DL19 nDCG@10 {precision}: {ndcg[precision]:.4f} ({len(judged)} queries)", flush=True)

    wikiqa: dict[str, tuple[float, float]] = {}
    if not args.skip_wikiqa:
        evaluate = _evaluate_module()
        examples = read_pruning_jsonl(data_root() / evaluate.PRUNING_SETS[WIKIQA])
        questions = [example.question for example in examples]
        texts = [[context_text(c.sentences)[0] for c in example.contexts] for example in examples]
        for precision, pruner in pruners.items():
            scored = pruner.process(questions, texts, reorder=False)
            report = score_pruning(examples, evaluate._kept_spans(scored))
            wikiqa[precision] = (report.recall, report.compression)
            print(f"WikiQA recall {precision}: {report.recall:.4f} ({len(examples)} examples)", flush=True)

    table = _table(
        args, speed, rates, subset, ndcg, logits, wikiqa, pruners["fp32"].threshold, len(speed_queries)
    )
    print(table)
    if args.out is not None:
        args.out.write_text(table)
    return table


def _table(
    args: argparse.Namespace,
    speed: dict[str, float],
    rates: dict[str, list[float]],
    subset: dict[str, float],
    ndcg: dict[str, float],
    logits: dict[str, dict[str, dict[str, float]]],
    wikiqa: dict[str, tuple[float, float]],
    threshold: float,
    speed_queries: int,
) -> str:
    lines = [
        "# CPU: fp32 vs dynamic int8",
        "",
        f"Hardware: {describe_hardware('cpu')}; torch {torch.__version__}, quantized engine "
        f"{torch.backends.quantized.engine}. Model: {args.model or 'shipped default'}. "
        f"Command: `python eval/bench_cpu.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`.",
        "",
        f"pairs/s: rerank + prune (threshold {threshold:g}, fusion none) of the first {speed_queries} DL19 "
        f"queries' BM25 top-100, median of {args.repeats} runs, fp32 and int8 alternated (a shared, noisy "
        "machine: the runs are listed). nDCG@10, timed queries: the timed runs' own rankings (the last run "
        "of each); all: every judged DL19 query, BM25 top-100, fusion none (not run with --skip-full-dl19). "
        f"WikiQA: dev answerable, sentence recall / removed share at the default threshold {threshold:g}.",
        "",
        "| precision | pairs/s (median) | runs | speed-up | DL19 nDCG@10, timed queries | DL19 nDCG@10, all "
        "| WikiQA recall | WikiQA removed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for precision in PRECISIONS:
        runs = ", ".join(f"{r:.1f}" for r in rates[precision])
        ratio = speed[precision] / speed["fp32"]
        score = f"{ndcg[precision]:.4f}" if precision in ndcg else "not run"
        timed_score = f"{subset[precision]:.4f}" if precision in subset else "n/a"
        recall, removed = (
            (f"{v:.4f}" for v in wikiqa[precision]) if precision in wikiqa else ("not run", "not run")
        )
        cells = [
            precision,
            f"{speed[precision]:.1f}",
            runs,
            f"{ratio:.2f}x",
            timed_score,
            score,
            recall,
            removed,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if logits:
        diffs = [
            abs(score - logits["int8"][qid][doc])
            for qid, docs in logits["fp32"].items()
            for doc, score in docs.items()
        ]
        lines += [
            "",
            f"int8 - fp32 ranking logits on the {len(diffs)} DL19 pairs: mean |diff| "
            f"{statistics.fmean(diffs):.4f}, max {max(diffs):.4f}.",
        ]
    gate = [f"speed-up {speed['int8'] / speed['fp32']:.2f}x (needs >= 2)"]
    if subset:
        gate.append(f"nDCG@10 change on the timed queries {subset['int8'] - subset['fp32']:+.4f}")
    if ndcg:
        gate.append(f"nDCG@10 change {ndcg['int8'] - ndcg['fp32']:+.4f} (needs within 0.005)")
    if wikiqa:
        gate.append(f"WikiQA recall change {wikiqa['int8'][0] - wikiqa['fp32'][0]:+.4f} (needs within 0.01)")
    lines += ["", "Default-precision gate (issue 13): " + "; ".join(gate) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
