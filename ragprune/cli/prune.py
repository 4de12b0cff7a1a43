"""``ragprune prune``: score and prune passages given as JSONL, one query per line."""

from __future__ import annotations

import argparse

from ragprune.cli.model_options import add_model_options, load_pruner

INPUT_HELP = (
    'JSONL, one object per line: {"query": str, "passages": [str | {"id", "text", "title", "metadata"}], '
    '"id": optional query id}; other fields are copied to the output'
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "prune",
        help="score and prune passages from a JSONL file",
        description="Rerank and prune the passages of each query. Output: one JSON object per input line "
        "with per-passage logit, probability, sentence scores, kept character spans, pruned text "
        "and compression.",
    )
    parser.add_argument("--input", required=True, help=INPUT_HELP)
    parser.add_argument("--output", required=True, help="output JSONL")
    parser.add_argument(
        "--threshold", type=float, default=None, help="pruning threshold (default: the model's)"
    )
    parser.add_argument("--top-k", type=int, default=None, help="keep only the best k passages per query")
    parser.add_argument(
        "--keep-order", action="store_true", help="keep the input order instead of sorting by score"
    )
    add_model_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ragprune.data.errors import DataFormatError
    from ragprune.data.files import numbered_json_objects
    from ragprune.types import Query

    records = []
    for lineno, record in numbered_json_objects(args.input, "prune input"):
        if not isinstance(record.get("query"), str) or not isinstance(record.get("passages"), list):
            raise DataFormatError.at(
                args.input,
                lineno,
                "each line needs a string 'query' and a list 'passages'",
                f"write lines as {INPUT_HELP}",
            )
        records.append(record)
    pruner = load_pruner(args)
    queries = [Query(str(r.get("id", i)), r["query"]) for i, r in enumerate(records)]
    results = pruner.process(
        queries,
        [r["passages"] for r in records],
        threshold=args.threshold,
        top_k=args.top_k,
        reorder=not args.keep_order,
    )
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record, result in zip(records, results):
            extra = {k: v for k, v in record.items() if k not in {"query", "passages", "id"}}
            handle.write(json.dumps({**extra, **result.to_dict()}, ensure_ascii=False) + "\n")
    print(f"wrote {len(results)} queries to {path}")
    return 0
