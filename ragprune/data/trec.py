"""TREC-style files: topics, qrels, runs and passage collections.

Formats:
- topics / passages: ``id<TAB>text`` per line (``.gz`` read transparently);
- qrels: ``query_id iteration doc_id relevance`` (whitespace-separated, integer relevance);
- runs: ``query_id Q0 doc_id rank score tag`` (whitespace-separated).

Readers keep ids and text verbatim and reject malformed lines, duplicate ids and empty texts with an error
that names the file and line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from ragprune.data.errors import DataFormatError, DataMismatchError
from ragprune.data.files import numbered_lines, preview, split_columns

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]

DUPLICATE_JUDGEMENT = "duplicate judgement for query {qid!r}, doc {doc_id!r}"
"""The qrels readers' problem for a (query, doc) pair judged twice (``str.format`` template)."""

_Value = TypeVar("_Value")


def read_topics(path: str | Path) -> dict[str, str]:
    """Query id -> query text from a ``qid<TAB>text`` file."""
    return _read_id_text(path, what="topics", id_name="query id")


def read_passages(path: str | Path) -> dict[str, str]:
    """Passage id -> passage text from a ``pid<TAB>text`` file (``.gz`` allowed)."""
    return _read_id_text(path, what="passages", id_name="passage id")


def _read_id_text(path: str | Path, what: str, id_name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for lineno, line in numbered_lines(path, what):
        ident, tab, text = line.partition("\t")
        ident = ident.strip()
        if not tab or not ident:
            raise DataFormatError.at(
                path,
                lineno,
                f"expected '{id_name}<TAB>text', got {preview(line)}",
                "separate the id from the text with a tab character",
            )
        if not text.strip():
            raise DataFormatError.at(
                path, lineno, f"empty text for {id_name} {ident!r}", "add the text or remove the line"
            )
        if ident in out:
            raise DataFormatError.at(
                path, lineno, f"duplicate {id_name} {ident!r}", "ids must be unique: remove or rename one"
            )
        out[ident] = text
    return out


def read_qrels(path: str | Path) -> Qrels:
    """Query id -> doc id -> integer relevance from a TREC qrels file."""
    qrels: Qrels = {}
    for lineno, line in numbered_lines(path, "qrels"):
        qid, _iteration, doc_id, relevance = split_columns(
            line,
            "query_id iteration doc_id relevance",
            path,
            lineno,
            "use TREC qrels format, e.g. '19335 0 1017759 2'",
        )
        try:
            grade = int(relevance)
        except ValueError:
            raise DataFormatError.at(
                path,
                lineno,
                f"relevance {relevance!r} is not an integer",
                "write relevance grades as integers (e.g. 0-3)",
            ) from None
        add_pair(qrels, qid, doc_id, grade, path, lineno, DUPLICATE_JUDGEMENT)
    return qrels


def read_run(path: str | Path) -> Run:
    """Query id -> doc id -> score from a TREC run file (ranks are implied by the scores)."""
    run: Run = {}
    for lineno, line in numbered_lines(path, "run"):
        qid, _q0, doc_id, rank, score, _tag = split_columns(
            line,
            "query_id Q0 doc_id rank score tag",
            path,
            lineno,
            "use TREC run format, e.g. '264014 Q0 5611210 1 15.78 bm25'",
        )
        try:
            int(rank)
            value = float(score)
        except ValueError:
            raise DataFormatError.at(
                path,
                lineno,
                f"rank {rank!r} must be an integer and score {score!r} a number",
                "columns 4 and 5 are rank and score",
            ) from None
        if not math.isfinite(value):
            raise DataFormatError.at(path, lineno, f"score {score!r} is not finite", "write finite scores")
        add_pair(run, qid, doc_id, value, path, lineno, "doc {doc_id!r} appears twice for query {qid!r}")
    return run


def add_pair(
    table: dict[str, dict[str, _Value]],
    qid: str,
    doc_id: str,
    value: _Value,
    path: str | Path,
    lineno: int,
    duplicate: str,
) -> None:
    """Set ``table[qid][doc_id] = value`` for one line of a qrels or run file. A pair already there is a
    :class:`DataFormatError` whose problem is ``duplicate`` formatted with ``qid`` and ``doc_id``."""
    row = table.setdefault(qid, {})
    if doc_id in row:
        raise DataFormatError.at(
            path, lineno, duplicate.format(qid=qid, doc_id=doc_id), "keep one line per (query, doc) pair"
        )
    row[doc_id] = value


def ranked_items(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """``(doc_id, score)`` pairs best first; ties broken by doc id (ascending) so the order is stable."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def write_run(run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str = "ragprune") -> None:
    """Write a TREC run: queries in id order, each ranked by :func:`ranked_items`, ranks from 1.

    Scores are written in full precision, so :func:`read_run` gives back exactly the same values.
    """
    text = format_run(run, tag)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def format_run(run: Mapping[str, Mapping[str, float]], tag: str = "ragprune") -> str:
    """The text :func:`write_run` writes (for writing elsewhere, e.g. standard output)."""
    if not tag or any(ch.isspace() for ch in tag):
        raise ValueError(f"run tag {tag!r} must be a non-empty string without whitespace")
    lines: list[str] = []
    for qid in sorted(run):
        _check_token("query id", qid)
        for rank, (doc_id, score) in enumerate(ranked_items(run[qid]), start=1):
            _check_token("doc id", doc_id)
            if not math.isfinite(score):
                raise ValueError(f"score {score!r} of query {qid!r}, doc {doc_id!r} is not finite")
            lines.append(f"{qid} Q0 {doc_id} {rank} {float(score)!r} {tag}\n")
    return "".join(lines)


def _check_token(name: str, value: str) -> None:
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"{name} {value!r} cannot go in a TREC run: use non-empty ids without spaces")


def common_queries(qrels: Mapping[str, object], run: Mapping[str, object]) -> list[str]:
    """The query ids judged in ``qrels`` that also appear in ``run``, sorted.

    Raises :class:`DataMismatchError` when there are none: then the run was made for other topics (or the
    files were swapped), and every measure would silently be zero or empty.
    """
    common = sorted(set(qrels) & set(run))
    if not common:
        raise DataMismatchError(
            f"the run and the qrels share no query ids (run: {len(run)} queries, e.g. {_examples(run)}; "
            f"qrels: {len(qrels)} queries, e.g. {_examples(qrels)}); evaluate the run against the qrels of "
            "the topics it was made for"
        )
    return common


def _examples(ids: Mapping[str, object] | set[str], limit: int = 3) -> str:
    shown = sorted(ids)[:limit]
    return ", ".join(shown) if shown else "none"
