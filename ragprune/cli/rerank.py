"""``ragprune rerank``: rerank (and prune) a TREC run with a rerank + prune model."""

from __future__ import annotations

import argparse
from typing import TextIO

from ragprune.cli.model_options import add_model_options, add_precision_option, load_pruner
from ragprune.cli.options import (
    add_threshold_option,
    check_output,
    json_line,
    open_output,
    positive_int,
    status_stream,
)
from ragprune.fusion import DEFAULT_FUSION, INTERPOLATE_ALPHA, RRF_K, Fusion, parse_fusion
from ragprune.pipeline.modes import MODES

DEFAULT_MEASURES = ("nDCG@10", "RR(rel=2)@10", "R@100")
ENGINES = ("inline", "local", "ray")  # ragprune.distributed.ENGINES (not imported here: --help stays fast)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "rerank",
        help="rerank a TREC run with the rerank + prune model",
        description="Rerank the top documents of every query of a TREC run (TREC in, TREC out). "
        "Prints throughput and the mean share of text pruning removed; with --qrels also the measures "
        "of the input and output runs, averaged over the judged queries the run holds (a warning says "
        "when that is a subset of the judged queries). Output folders must exist; '-' is standard output.",
    )
    parser.add_argument("--queries", required=True, help="topics: 'qid<TAB>text' TSV or BEIR queries.jsonl")
    parser.add_argument("--run", required=True, help="input TREC run to rerank")
    parser.add_argument(
        "--passages", required=True, help="the collection: 'pid<TAB>text' TSV (.gz ok) or BEIR corpus.jsonl"
    )
    parser.add_argument(
        "--output",
        required=True,
        help="where to write the reranked TREC run ('-': standard output; the summary then goes to stderr)",
    )
    parser.add_argument(
        "--top-k", type=positive_int, default=100, help="rerank this many documents per query (default 100)"
    )
    add_threshold_option(parser)
    parser.add_argument(
        "--fusion",
        type=fusion_spec,
        default=DEFAULT_FUSION,
        metavar="{none,interpolate[:ALPHA],rrf[:K]}",
        help="combine the model's score with the input run's own score, per query: 'none' (the model "
        "alone), 'interpolate:ALPHA' (ALPHA * z(model logit) + (1 - ALPHA) * z(run score), z-scored over "
        f"the reranked documents; plain 'interpolate' is ALPHA={INTERPOLATE_ALPHA:g}) or 'rrf:K' "
        f"(reciprocal rank fusion, K={RRF_K} by default). Default {DEFAULT_FUSION}: chosen on TREC DL21 "
        "only as the best mean nDCG@10 over its BM25 and SPLADE++ top-100 (eval/results/fusion_dl21.md): "
        "behind BM25 'none' ranks a little better (DL21 0.577 vs 0.560), behind SPLADE++ rrf loses far "
        "less than 'none' (0.668 vs 0.578; SPLADE++ alone 0.684)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="pointwise",
        help="ranking: 'pointwise' (the rank head, default), 'listwise' (the model's list-level head over "
        "FIRST-style windows of 20, stride 10) or 'full' (the list head over all --top-k candidates at "
        "once); pruning is the same in every mode; the list modes need a model with a list-level head",
    )
    parser.add_argument(
        "--qrels",
        default=None,
        help="TREC qrels or BEIR qrels/<split>.tsv: also print measures of input and output runs",
    )
    parser.add_argument(
        "--pruned-output", default=None, help="also write per-passage scores, spans and pruned text (JSONL)"
    )
    parser.add_argument(
        "--tag", default="ragprune", help="run tag written in the output run (default ragprune)"
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="inline",
        help="where the model runs: 'inline' (this process, one device; default), 'local' (one worker "
        "process per local GPU, or --workers CPU processes) or 'ray' (Ray Data, one worker per GPU of the "
        "Ray cluster, CPU workers without GPUs; needs pip install 'ragprune[distributed]'; joins a running "
        "Ray instance, e.g. RAY_ADDRESS=auto, else starts a local one). The output files are the same",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="worker processes of --engine local/ray (default: one per GPU; without GPUs 2 for local, "
        "1 for ray)",
    )
    add_model_options(parser)
    add_precision_option(parser)
    return parser


def fusion_spec(value: str) -> Fusion:
    """An argparse type: a fusion method (``ragprune.fusion.parse_fusion``)."""
    try:
        return parse_fusion(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    import time

    from ragprune.data import common_queries, format_run, read_any_qrels, read_corpus, read_queries, read_run
    from ragprune.pipeline.rerank_run import rerank_run

    if args.workers is not None and args.engine == "inline":
        from ragprune.cli import UserError

        raise UserError("--workers needs --engine local or ray (the inline engine is this one process)")
    if args.precision not in (None, "fp32") and args.engine != "inline":
        from ragprune.cli import UserError

        raise UserError(f"--precision {args.precision} runs with --engine inline only (the default)")
    format_run({}, tag=args.tag)  # a bad --tag fails here, not after the reranking
    check_output(args.output, "--output")
    if args.pruned_output is not None:
        check_output(args.pruned_output, "--pruned-output")
    if args.output == "-" and args.pruned_output == "-":
        from ragprune.cli import UserError

        raise UserError("--output and --pruned-output cannot both be standard output ('-')")
    queries = read_queries(args.queries)
    first_stage = read_run(args.run)
    corpus = read_corpus(args.passages)
    qrels = read_any_qrels(args.qrels) if args.qrels else None
    covered = common_queries(qrels, first_stage) if qrels is not None else []  # fails before the model runs
    if args.engine != "inline":
        return _run_distributed(args, queries, first_stage, corpus, qrels, covered)
    pruner = load_pruner(args, mode=args.mode)
    start = time.perf_counter()
    reranked = rerank_run(
        pruner, queries, first_stage, corpus, top_k=args.top_k, threshold=args.threshold, fusion=args.fusion
    )
    seconds = time.perf_counter() - start
    run_text = format_run(reranked.run, tag=args.tag)
    with open_output(args.output) as handle:
        handle.write(run_text)
    if args.pruned_output:
        with open_output(args.pruned_output) as handle:
            for result in reranked.results:
                handle.write(json_line(result.to_dict(), handle.encoding))
    out = status_stream("-" if "-" in (args.output, args.pruned_output) else args.output)
    pairs = sum(len(result) for result in reranked.results)
    print(f"pairs\t{pairs}", file=out)
    print(f"pairs_per_second\t{pairs / seconds:.1f}\t({pruner.device})", file=out)
    print(f"mean_compression\t{reranked.mean_compression:.4f}", file=out)
    print(f"fusion\t{args.fusion}", file=out)
    print(f"mode\t{args.mode}", file=out)
    if qrels is not None:
        _print_measures(args.qrels, qrels, covered, first_stage, reranked.run, out)
    return 0


def _run_distributed(
    args: argparse.Namespace,
    queries: dict,
    first_stage: dict,
    corpus: dict,
    qrels: dict | None,
    covered: list,
) -> int:
    """``--engine local`` / ``ray``: ``ragprune.distributed.rerank_prune`` writes the same files."""
    from ragprune.cli import UserError
    from ragprune.distributed import rerank_prune, trec_to_tasks

    source = trec_to_tasks(queries, first_stage, corpus, top_k=args.top_k)
    try:
        summary = rerank_prune(
            source,
            args.output,
            args.pruned_output,
            engine=args.engine,
            workers=args.workers,
            model=args.model,
            device=args.device,
            batch_size=args.batch_size,
            threshold=args.threshold,
            fusion=str(args.fusion),
            mode=args.mode,
            tag=args.tag,
            collect_run=qrels is not None,
        )
    except ImportError as error:
        raise UserError(str(error)) from error
    out = status_stream("-" if "-" in (args.output, args.pruned_output) else args.output)
    print(f"pairs\t{summary.pairs}", file=out)
    where = f"{args.engine} engine, {summary.workers} workers"
    print(f"pairs_per_second\t{summary.pairs_per_second:.1f}\t({where})", file=out)
    print(f"mean_compression\t{summary.mean_compression:.4f}", file=out)
    print(f"fusion\t{args.fusion}", file=out)
    print(f"mode\t{args.mode}", file=out)
    if qrels is not None and summary.run is not None:
        _print_measures(args.qrels, qrels, covered, first_stage, summary.run, out)
    return 0


def _print_measures(
    qrels_path: str, qrels: dict, covered: list[str], before_run: dict, after_run: dict, out: TextIO
) -> None:
    """Input and output measures over the judged queries the run holds, with a warning when those are
    fewer than the judged queries (``ragprune eval`` would count the others as 0)."""
    from ragprune.cli.measure_notes import warn, warn_unreachable
    from ragprune.evaluation import evaluate_run

    if len(covered) < len(qrels):
        warn(
            "rerank",
            f"the run holds {len(covered)} of the {len(qrels)} queries judged in {qrels_path}: the measures "
            f"below are means over those {len(covered)} queries only (ragprune eval --qrels {qrels_path} "
            "counts the missing ones as 0)",
        )
    judged = {qid: qrels[qid] for qid in covered}
    warn_unreachable("rerank", qrels_path, judged, DEFAULT_MEASURES)
    before = evaluate_run(judged, before_run, DEFAULT_MEASURES).aggregate
    after = evaluate_run(judged, after_run, DEFAULT_MEASURES).aggregate
    print(f"queries\t{len(covered)}\t(judged queries in the run)", file=out)
    for name in DEFAULT_MEASURES:
        print(f"{name}\t{after[name]:.4f}\t(input run {before[name]:.4f})", file=out)
