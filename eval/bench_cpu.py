"""CPU benchmark of the encoder backends (``RerankPruner(precision=...)``, ``ragprune.pipeline.precision``):
``fp32`` (torch, the baseline), ``int8`` (torch dynamic int8), ``onnx-fp32`` and ``onnx-int8`` (ONNX
Runtime, ``ragprune.pipeline.onnx_backend``), side by side in one process.

Prints (and with ``--out`` writes) a markdown table naming the hardware:

* pairs/s: rerank + prune (default threshold, ``fusion="none"``) of the first ``--speed-queries`` DL19
  queries' BM25 top-100, end to end from strings to results. Each round runs every query on every backend,
  query by query, the backends' order rotating from query to query, so load from other jobs on a shared
  machine falls on all of them alike; a backend's rate per round is its pairs over its summed seconds.
  Reported: the median rate over ``--repeats`` rounds and the median over rounds of the rate / fp32's rate
  in the same round (the speed-up); one warm-up query per backend first (it also builds the ONNX files);
* DL19 nDCG@10 over all 43 judged queries (BM25 top-100 reranked, ``fusion="none"``) and the mean / max
  absolute difference of each backend's ranking logits from fp32's on those pairs;
* WikiQA dev (answerable) sentence recall and removed share at the model's default threshold
  (``eval/evaluate.py``'s data and measures).

    python eval/bench_cpu.py --out eval/results/bench_cpu.md
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
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
BASELINE = "fp32"
Run = dict[str, dict[str, float]]
"""query id -> document id -> ranking logit."""


@dataclass
class Measured:
    """What the benchmark found for one backend (``None``: not run)."""

    rates: list[float] = field(default_factory=list)
    """pairs/s per round."""
    ratios: list[float] = field(default_factory=list)
    """rate / fp32's rate, per round."""
    timed_ndcg: float | None = None
    ndcg: float | None = None
    run: Run | None = None
    wikiqa: tuple[float, float] | None = None
    """(sentence recall, removed share)."""


def _evaluate_module() -> ModuleType:
    """``eval/evaluate.py`` (its pruning sets and helpers are reused, not copied)."""
    spec = importlib.util.spec_from_file_location(
        "ragprune_evaluate", Path(__file__).with_name("evaluate.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _backends(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PRECISIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown backend(s) {unknown}; use some of {PRECISIONS}")
    return [BASELINE] + [name for name in names if name != BASELINE]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument(
        "--backends",
        type=_backends,
        default=list(PRECISIONS),
        help=f"comma-separated precisions to compare (default: {','.join(PRECISIONS)}; fp32 always runs)",
    )
    parser.add_argument("--speed-queries", type=int, default=10, help="DL19 queries timed (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3; 0: quality only)")
    parser.add_argument("--skip-full-dl19", action="store_true", help="no nDCG@10 over all 43 DL19 queries")
    parser.add_argument("--skip-wikiqa", action="store_true", help="no WikiQA pruning recall")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here (markdown)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    dl19 = load_trec_dl("dl19")
    queries, documents = dl19.candidates(depth=100)
    pruners = {name: RerankPruner.load(args.model, device="cpu", precision=name) for name in args.backends}
    measured = {name: Measured() for name in pruners}
    load_before = os.getloadavg()

    for pruner in pruners.values():  # warm-up
        pruner.process(queries[0], documents[0][:8])
    speed_queries = queries[: args.speed_queries]
    for repeat in range(args.repeats):
        seconds = dict.fromkeys(pruners, 0.0)
        pairs = dict.fromkeys(pruners, 0)
        runs: dict[str, Run] = {name: {} for name in pruners}
        for qi, query in enumerate(speed_queries):
            names = list(pruners)
            for name in names[qi % len(names) :] + names[: qi % len(names)]:  # rotated: no fixed position
                start = time.perf_counter()
                result = pruners[name].process(query, documents[qi])
                seconds[name] += time.perf_counter() - start
                pairs[name] += len(result)
                runs[name][query.id] = {p.document.id: result.ranking_score(p) for p in result}
        for name in pruners:
            measured[name].rates.append(pairs[name] / seconds[name])
            measured[name].ratios.append(seconds[BASELINE] / pairs[BASELINE] * pairs[name] / seconds[name])
            measured[name].run = runs[name]
        line = ", ".join(f"{n} {m.rates[-1]:.1f}" for n, m in measured.items())
        print(f"round {repeat + 1} pairs/s: {line}", flush=True)
    load_after = os.getloadavg()

    if args.repeats:  # nDCG@10 of the timed runs themselves (their queries only, fusion none)
        judged = {q.id: dl19.qrels[q.id] for q in speed_queries if q.id in dl19.qrels}
        for found in measured.values():
            assert found.run is not None
            found.timed_ndcg = evaluate_run(judged, found.run, ("nDCG@10",)).aggregate["nDCG@10"]
    if not args.skip_full_dl19:
        judged = {qid: dl19.qrels[qid] for qid in dl19.qrels if qid in dl19.run}
        corpus = {pid: Document(pid, text) for pid, text in dl19.passages.items()}
        for name, pruner in pruners.items():
            reranked = rerank_run(pruner, dl19.topics, dl19.run, corpus, top_k=100, fusion="none")
            measured[name].run = reranked.run  # all 43 queries replace the timed subset
            measured[name].ndcg = evaluate_run(judged, reranked.run, ("nDCG@10",)).aggregate["nDCG@10"]
            print(f"DL19 nDCG@10 {name}: {measured[name].ndcg:.4f} ({len(judged)} queries)", flush=True)
    if not args.skip_wikiqa:
        evaluate = _evaluate_module()
        examples = read_pruning_jsonl(data_root() / evaluate.PRUNING_SETS[WIKIQA])
        questions = [example.question for example in examples]
        texts = [[context_text(c.sentences)[0] for c in example.contexts] for example in examples]
        for name, pruner in pruners.items():
            report = score_pruning(
                examples, evaluate._kept_spans(pruner.process(questions, texts, reorder=False))
            )
            measured[name].wikiqa = (report.recall, report.compression)
            print(f"WikiQA recall {name}: {report.recall:.4f} ({len(examples)} examples)", flush=True)

    table = _table(args, measured, pruners[BASELINE].threshold, (load_before[0], load_after[0]))
    print(table)
    if args.out is not None:
        args.out.write_text(table)
    return table


def _cell(value: float | None, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "not run"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _logit_change(run: Run | None, baseline: Run | None) -> str:
    """Mean / max |logit - fp32 logit| over the pairs both runs scored."""
    if run is None or baseline is None:
        return "not run"
    diffs = [abs(score - baseline[qid][doc]) for qid, docs in run.items() for doc, score in docs.items()]
    return f"{statistics.fmean(diffs):.4f} / {max(diffs):.4f} ({len(diffs)} pairs)"


def _table(
    args: argparse.Namespace, measured: dict[str, Measured], threshold: float, load: tuple[float, float]
) -> str:
    base = measured[BASELINE]
    command = " ".join(["python eval/bench_cpu.py", *sys.argv[1:]])
    lines = [
        "# CPU: encoder backends side by side",
        "",
        f"Hardware: {describe_hardware('cpu')}; torch {torch.__version__}{_ort_version()}. "
        f"Model: {args.model or 'shipped default'}. Command: `{command}`. "
        f"Load average (1 min) {load[0]:.1f} before the timed rounds, {load[1]:.1f} after.",
        "",
        f"pairs/s: rerank + prune (threshold {threshold:g}, fusion none) of the first {args.speed_queries} "
        f"DL19 queries' BM25 top-100, {args.repeats} rounds, the backends interleaved query by query in "
        "rotating order (a shared, noisy machine: the rounds are listed); speed-up: median over rounds of "
        "the rate / fp32's rate in the same round. nDCG@10, timed queries: the last round's rankings; "
        "all: every judged DL19 query, BM25 top-100, fusion none. |Δ logit|: mean / max against fp32 on "
        "the same pairs. WikiQA: dev answerable, sentence recall / removed share at the default threshold "
        f"{threshold:g}.",
        "",
        "| backend | pairs/s (median) | rounds | speed-up | DL19 nDCG@10, timed | DL19 nDCG@10, all "
        "| Δ nDCG@10 | WikiQA recall | Δ recall | WikiQA removed | \\|Δ logit\\| vs fp32 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    gates = []
    for name, found in measured.items():
        rate = statistics.median(found.rates) if found.rates else None
        ratio = statistics.median(found.ratios) if found.ratios else None
        delta = None if found.ndcg is None or base.ndcg is None else found.ndcg - base.ndcg
        recall, removed = found.wikiqa or (None, None)
        recall_delta = None if recall is None or base.wikiqa is None else recall - base.wikiqa[0]
        cells = [
            name,
            _cell(rate, 1),
            ", ".join(f"{r:.1f}" for r in found.rates) or "not run",
            "not run" if ratio is None else f"{ratio:.2f}x",
            _cell(found.timed_ndcg),
            _cell(found.ndcg),
            _cell(delta, signed=True),
            _cell(recall),
            _cell(recall_delta, signed=True),
            _cell(removed),
            "—" if name == BASELINE else _logit_change(found.run, base.run),
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if name != BASELINE:
            passed = (
                ratio is not None
                and ratio >= 2
                and delta is not None
                and abs(delta) <= 0.005
                and recall_delta is not None
                and abs(recall_delta) <= 0.01
            )
            gates.append(f"{name} {'passes' if passed else 'fails'}")
    lines += [
        "",
        "Default-backend gate (issue 13: speed-up >= 2, |Δ nDCG@10| <= 0.005 over all 43 queries, "
        f"|Δ WikiQA recall| <= 0.01): {'; '.join(gates)}.",
        "",
    ]
    return "\n".join(lines)


def _ort_version() -> str:
    try:
        import onnxruntime
    except ImportError:
        return ""
    return f", onnxruntime {onnxruntime.__version__}"


if __name__ == "__main__":
    main()
