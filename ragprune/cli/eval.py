"""``ragprune eval``: ranking measures of a TREC run against qrels, optionally compared with a second run."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from ragprune.evaluation.ranking import DEFAULT_MEASURES  # light: ir-measures loads only when evaluating

    parser = subparsers.add_parser(
        "eval",
        help="evaluate a TREC run against qrels (ir-measures)",
        description="Evaluate a TREC run against TREC qrels. Prints one 'MEASURE<TAB>VALUE' line per "
        "measure; judged queries missing from the run count as 0 (like trec_eval -c).",
    )
    parser.add_argument(
        "--qrels", required=True, help="TREC qrels file (query_id iteration doc_id relevance)"
    )
    parser.add_argument("--run", required=True, help="TREC run file (query_id Q0 doc_id rank score tag)")
    parser.add_argument(
        "--measures",
        nargs="+",
        default=list(DEFAULT_MEASURES),
        metavar="MEASURE",
        help="ir-measures names (default: %(default)s)",
    )
    parser.add_argument(
        "--per-query", action="store_true", help="also print 'MEASURE<TAB>QUERY<TAB>VALUE' lines"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text lines")
    parser.add_argument(
        "--compare",
        metavar="RUN2",
        help="a second run: print both means, RUN2 - RUN and paired t-test / randomization p-values",
    )
    parser.add_argument(
        "--resamples", type=int, default=10_000, help="randomization test resamples (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="randomization test seed (default: %(default)s)")
    return parser


def run(args: argparse.Namespace) -> int:
    from ragprune.cli.measure_notes import warn_unreachable
    from ragprune.data import read_any_qrels, read_run
    from ragprune.evaluation import compare_evaluations, evaluate_run

    qrels = read_any_qrels(args.qrels)
    result = evaluate_run(qrels, read_run(args.run), args.measures)
    warn_unreachable("eval", args.qrels, qrels, result.measures)
    _warn_unranked(args.run, result.unranked_queries)
    comparison = None
    if args.compare:
        other = evaluate_run(qrels, read_run(args.compare), result.measures)
        _warn_unranked(args.compare, other.unranked_queries)
        comparison = compare_evaluations(result, other, resamples=args.resamples, seed=args.seed)
    if args.json:
        print(json.dumps(_as_json(args, result, comparison), indent=2))
        return 0
    if comparison is None:
        for name in result.measures:
            print(f"{name}\t{result.aggregate[name]:.4f}")
    else:
        print("measure\trun\tcompare\tdiff\tp_ttest\tp_randomization\tqueries")
        for name, test in comparison.items():
            print(
                f"{name}\t{test.mean_a:.4f}\t{test.mean_b:.4f}\t{test.mean_diff:+.4f}\t"
                f"{test.t_pvalue:.4g}\t{test.randomization_pvalue:.4g}\t{test.n}"
            )
    if args.per_query:
        for name in result.measures:
            for qid, value in result.per_query[name].items():
                print(f"{name}\t{qid}\t{value:.4f}")
    return 0


def _warn_unranked(run_path: str, unranked: list[str]) -> None:
    from ragprune.cli.measure_notes import warn

    if unranked:
        warn(
            "eval",
            f"{len(unranked)} judged queries have no results in {run_path} "
            f"and count as 0 in the means (e.g. {', '.join(unranked[:3])})",
        )


def _as_json(args: argparse.Namespace, result: Any, comparison: dict[str, Any] | None) -> dict[str, Any]:
    from dataclasses import asdict

    out: dict[str, Any] = {
        "qrels": args.qrels,
        "run": args.run,
        "queries": len(result.queries),
        "unranked_queries": result.unranked_queries,
        "measures": result.aggregate,
    }
    if args.per_query:
        out["per_query"] = result.per_query
    if comparison is not None:
        tests = {name: {k: _finite(v) for k, v in asdict(test).items()} for name, test in comparison.items()}
        out["compare"] = {"run": args.compare, "tests": tests}
    return out


def _finite(value: Any) -> Any:
    """NaN p-values (undefined t-tests) as JSON ``null``."""
    from ragprune.types import json_float

    return json_float(value) if isinstance(value, float) else value
