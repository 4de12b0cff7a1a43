"""``ragprune rerank``: rerank (and prune) a TREC run with a rerank + prune model."""

from __future__ import annotations

import argparse

from ragprune.cli.model_options import add_model_options, load_pruner

DEFAULT_MEASURES = ("nDCG@10", "RR(rel=2)@10", "R@100")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "rerank",
        help="rerank a TREC run with the rerank + prune model",
        description="Rerank the top documents of every query of a TREC run (TREC in, TREC out). "
        "Prints throughput and the mean share of text pruning removed; with --qrels also the measures.",
    )
    parser.add_argument("--queries", required=True, help="topics: 'qid<TAB>text' TSV or BEIR queries.jsonl")
    parser.add_argument("--run", required=True, help="input TREC run to rerank")
    parser.add_argument(
        "--passages", required=True, help="the collection: 'pid<TAB>text' TSV (.gz ok) or BEIR corpus.jsonl"
    )
    parser.add_argument("--output", required=True, help="where to write the reranked TREC run")
    parser.add_argument(
        "--top-k", type=int, default=100, help="rerank this many documents per query (default 100)"
    )
    parser.add_argument(
        "--threshold", type=float, default=None, help="pruning threshold (default: the model's)"
    )
    parser.add_argument(
        "--qrels", default=None, help="TREC qrels: also print measures of input and output runs"
    )
    parser.add_argument(
        "--pruned-output", default=None, help="also write per-passage scores, spans and pruned text (JSONL)"
    )
    parser.add_argument(
        "--tag", default="ragprune", help="run tag written in the output run (default ragprune)"
    )
    add_model_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from ragprune.cli import UserError
    from ragprune.data import read_corpus, read_qrels, read_queries, read_run, write_run
    from ragprune.pipeline.rerank_run import rerank_run

    if args.top_k < 1:
        raise UserError(f"--top-k {args.top_k}: use a positive number of documents")
    queries = read_queries(args.queries)
    first_stage = read_run(args.run)
    corpus = read_corpus(args.passages)
    qrels = read_qrels(args.qrels) if args.qrels else None
    pruner = load_pruner(args)
    start = time.perf_counter()
    reranked = rerank_run(pruner, queries, first_stage, corpus, top_k=args.top_k, threshold=args.threshold)
    seconds = time.perf_counter() - start
    write_run(reranked.run, args.output, tag=args.tag)
    if args.pruned_output:
        path = Path(args.pruned_output)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for result in reranked.results:
                handle.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
    pairs = sum(len(result) for result in reranked.results)
    print(f"pairs\t{pairs}")
    print(f"pairs_per_second\t{pairs / seconds:.1f}\t({pruner.device})")
    print(f"mean_compression\t{reranked.mean_compression:.4f}")
    if qrels is not None:
        from ragprune.evaluation import evaluate_run

        before = evaluate_run(qrels, first_stage, DEFAULT_MEASURES).aggregate
        after = evaluate_run(qrels, reranked.run, DEFAULT_MEASURES).aggregate
        for name in DEFAULT_MEASURES:
            print(f"{name}\t{after[name]:.4f}\t(input run {before[name]:.4f})")
    return 0
