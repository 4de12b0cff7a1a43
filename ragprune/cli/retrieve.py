"""``ragprune retrieve``: first-stage retrieval of a query set over a corpus, written as a TREC run."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from ragprune.retrieval import BACKENDS  # light: backends load their libraries only when used

    parser = subparsers.add_parser(
        "retrieve",
        help="retrieve the top-k documents of each query (BM25 or dense) into a TREC run",
        description="Index a corpus and write the top-k documents of each query as a TREC run. Corpus: a "
        "BEIR corpus.jsonl or a 'pid<TAB>text' file (.gz allowed); queries: a BEIR queries.jsonl or a "
        "'qid<TAB>text' file.",
    )
    parser.add_argument("--corpus", required=True, help="BEIR corpus.jsonl or passages TSV")
    parser.add_argument("--queries", required=True, help="BEIR queries.jsonl or topics TSV")
    parser.add_argument("--output", required=True, help="where to write the TREC run")
    parser.add_argument("--backend", choices=list(BACKENDS), default="bm25s", help="default: %(default)s")
    parser.add_argument("--k", type=int, default=100, help="documents per query (default: %(default)s)")
    parser.add_argument("--k1", type=float, default=None, help="BM25 k1 (default: the backend's)")
    parser.add_argument("--b", type=float, default=None, help="BM25 b (default: the backend's)")
    parser.add_argument("--model", default=None, help="dense: local sentence-transformers folder")
    parser.add_argument("--tag", default=None, help="run tag (default: ragprune-BACKEND)")
    return parser


def run(args: argparse.Namespace) -> int:
    from ragprune.cli import UserError
    from ragprune.data import read_corpus, read_queries, write_run
    from ragprune.retrieval import get_retriever

    options: dict[str, Any] = {}
    if args.backend == "dense":
        if args.k1 is not None or args.b is not None:
            raise UserError("--k1/--b apply to the BM25 backends (bm25s, lucene), not to dense")
        if args.model is not None:
            options["model"] = args.model
    else:
        if args.model is not None:
            raise UserError(f"--model applies to the dense backend, not to {args.backend}")
        options.update({key: value for key, value in (("k1", args.k1), ("b", args.b)) if value is not None})
    if args.k < 1:
        raise UserError(f"--k must be at least 1, got {args.k}")
    corpus = read_corpus(args.corpus)
    queries = read_queries(args.queries)
    retriever = get_retriever(args.backend, **options)
    start = time.perf_counter()
    retriever.index(corpus)
    indexed = time.perf_counter()
    result = retriever.search(queries, k=args.k)
    searched = time.perf_counter()
    write_run(result, args.output, tag=args.tag or f"ragprune-{args.backend}")
    print(
        f"ragprune retrieve: {args.backend}: {len(corpus)} documents indexed in {indexed - start:.1f} s, "
        f"{len(queries)} queries searched in {searched - indexed:.1f} s; wrote {args.output}",
        file=sys.stderr,
    )
    return 0
