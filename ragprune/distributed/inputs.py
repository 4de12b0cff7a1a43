"""Readers that turn a large input into :class:`~ragprune.distributed.tasks.RerankInput`: a TREC run with its
topics and passages (what ``ragprune rerank`` takes), or rows of ``{qid, query, docid, text}`` from JSONL or
Parquet.

Everything is checked here, before any model loads: unknown ids, duplicated pairs, a query id with two
texts. Errors are ``DataFormatError`` / ``DataMismatchError`` (both ``ValueError``) naming the problem and
the fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ragprune.data import DataFormatError, DataMismatchError, ranked_items
from ragprune.distributed.tasks import QueryTask, RerankInput
from ragprune.types import Document

REQUIRED_COLUMNS = ("qid", "query", "docid", "text")
OPTIONAL_COLUMNS = ("title", "score")
ROW_SUFFIXES = (".jsonl", ".json", ".parquet")


def read_trec(queries: str | Path, run: str | Path, passages: str | Path, top_k: int = 100) -> RerankInput:
    """Read a TREC run, its topics (``qid<TAB>text`` or BEIR ``queries.jsonl``) and the collection
    (``pid<TAB>text`` TSV, ``.gz`` ok, or BEIR ``corpus.jsonl``) as ``ragprune rerank`` does; see
    :func:`trec_to_tasks`. Reader errors name the file and line."""
    from ragprune.data import read_corpus, read_queries, read_run

    return trec_to_tasks(read_queries(queries), read_run(run), read_corpus(passages), top_k)


def trec_to_tasks(
    queries: Mapping[str, str],
    run: Mapping[str, Mapping[str, float]],
    corpus: Mapping[str, Document],
    top_k: int = 100,
) -> RerankInput:
    """One task per query of ``run`` (in query-id order): its ``top_k`` best documents are the candidates,
    the rest stay in the output run below them (as in :func:`ragprune.pipeline.rerank_run.rerank_run`).

    Raises ``DataMismatchError`` for run queries without text in ``queries`` and candidates missing from
    ``corpus``, ``ValueError`` for ``top_k < 1`` or an empty run.
    """
    if top_k < 1:
        raise ValueError(f"top_k={top_k}; rerank at least one document per query")
    if not run:
        raise ValueError("the run holds no query; pass a TREC run with at least one line")
    missing = sorted(set(run) - set(queries))
    if missing:
        raise DataMismatchError(
            f"{len(missing)} run queries have no text in the queries file (e.g. {missing[:3]}); "
            "pass the topics file that belongs to this run"
        )
    tasks = []
    for qid in sorted(run):
        head = [doc_id for doc_id, _ in ranked_items(run[qid])[:top_k]]
        unknown = [doc_id for doc_id in head if doc_id not in corpus]
        if unknown:
            raise DataMismatchError(
                f"query {qid}: {len(unknown)} run documents are not in the passages/corpus file "
                f"(e.g. {unknown[:3]}); pass the collection this run was retrieved from"
            )
        tasks.append(QueryTask(qid, queries[qid], tuple(corpus[doc_id] for doc_id in head), dict(run[qid])))
    return RerankInput(tuple(tasks), top_k, has_scores=True)


def read_rows(path: str | Path, top_k: int | None = None) -> RerankInput:
    """Rows of ``{qid, query, docid, text}`` (optional ``title``, ``score``; other columns become the
    document's ``metadata``) from a ``.jsonl`` file (one JSON object per line) or a ``.parquet`` file
    (needs ``pyarrow``, which the ``distributed`` extra installs); see :func:`rows_to_tasks`."""
    path = Path(path)
    if path.suffix not in ROW_SUFFIXES:
        raise DataFormatError.at(
            path, None, f"unknown row file type {path.suffix!r}", f"use one of {', '.join(ROW_SUFFIXES)}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"rows file not found: {path}; check the path")
    if path.suffix == ".parquet":
        return rows_to_tasks(_parquet_rows(path), str(path), top_k)
    return rows_to_tasks(_jsonl_rows(path), str(path), top_k)


def rows_to_tasks(
    rows: Iterable[Mapping[str, Any]], source: str = "rows", top_k: int | None = None
) -> RerankInput:
    """Group rows by ``qid`` into tasks (in query-id order).

    Within a query the candidates are ordered by ``score`` (descending, ties by doc id) when the rows have
    one, else by their order in the input; ``top_k`` (``None``: all) of them are scored and the rest stay
    in the output run below them. Every row must name ``qid``, ``query``, ``docid`` (strings or integers)
    and ``text``; a query id must always come with the same query text, a doc id with the same text and
    title (a doc id names one passage), and a (qid, docid) pair may appear once. Either every row has a
    ``score`` or none does. Violations raise ``DataFormatError`` naming ``source``, the row and the fix.
    """
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k}; rerank at least one document per query (None: all rows)")
    queries: dict[str, str] = {}
    grouped: dict[str, dict[str, tuple[Document, float | None]]] = {}
    documents: dict[str, tuple[str, str, str]] = {}  # doc id -> (text, title, first qid)
    scored: bool | None = None
    count = 0
    for count, row in enumerate(rows, start=1):
        where = f"{source}: row {count}"
        if not isinstance(row, Mapping):
            raise DataFormatError(f"{where} is {type(row).__name__}, not an object; write one object per row")
        absent = [name for name in REQUIRED_COLUMNS if row.get(name) is None]
        if absent:
            raise DataFormatError(
                f"{where} has no {', '.join(absent)}; every row needs {', '.join(REQUIRED_COLUMNS)}"
            )
        qid, docid = _id(row["qid"], "qid", where), _id(row["docid"], "docid", where)
        query, text, title = row["query"], row["text"], row.get("title") or ""
        for name, value in (("query", query), ("text", text), ("title", title)):
            if not isinstance(value, str):
                raise DataFormatError(f"{where}: {name} is {type(value).__name__}; give a string")
        score = _score(row.get("score"), where)
        if scored is None:
            scored = score is not None
        elif scored != (score is not None):
            raise DataFormatError(
                f"{where}: some rows have a score and others not; give every row a score or none"
            )
        if queries.setdefault(qid, query) != query:
            raise DataFormatError(
                f"{where}: query {qid!r} comes with two different texts; give each query text its own qid"
            )
        known = documents.setdefault(docid, (text, title, qid))
        if known[:2] != (text, title):
            raise DataFormatError(
                f"{where}: doc id {docid!r} has a different text or title than for query {known[2]!r}; "
                "a doc id names one passage: give different passages different doc ids"
            )
        group = grouped.setdefault(qid, {})
        if docid in group:
            raise DataFormatError(
                f"{where}: pair (qid {qid!r}, docid {docid!r}) appears twice; give each pair once"
            )
        metadata = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
        _check_json(metadata, where)
        group[docid] = (Document(docid, text, title, metadata), score)
    if not grouped:
        raise DataFormatError(f"{source}: no rows; give at least one {{qid, query, docid, text}} row")
    tasks = []
    for qid in sorted(grouped):
        group = grouped[qid]
        # without scores the input order is the first-stage ranking: -position keeps it under ranked_items
        run = {docid: (s if s is not None else -float(i)) for i, (docid, (_, s)) in enumerate(group.items())}
        limit = len(run) if top_k is None else top_k
        head = [docid for docid, _ in ranked_items(run)[:limit]]
        tasks.append(QueryTask(qid, queries[qid], tuple(group[d][0] for d in head), run))
    width = max(task.pairs for task in tasks) if top_k is None else top_k
    return RerankInput(tuple(tasks), width, has_scores=bool(scored))


def _id(value: object, name: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataFormatError(f"{where}: {name} is {type(value).__name__}; give a string or an integer")
    text = str(value)
    if not text or any(ch.isspace() for ch in text):
        raise DataFormatError(f"{where}: {name} {text!r} is empty or has spaces; TREC ids cannot")
    return text


def _score(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataFormatError(f"{where}: score {value!r} is not a finite number; give one or leave it out")
    return float(value)


def _check_json(metadata: dict[str, Any], where: str) -> None:
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as error:
        raise DataFormatError(
            f"{where}: extra columns {sorted(metadata)} must hold JSON values (they become the document's "
            f"metadata): {error}; drop or convert them"
        ) from None


def _jsonl_rows(path: Path) -> Iterable[Any]:
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFormatError.at(
                    path, lineno, f"not valid JSON ({error.msg})", "write one JSON object per line"
                ) from None


def _parquet_rows(path: Path) -> Iterable[Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            f"reading {path} needs pyarrow: pip install 'ragprune[distributed]' (or pyarrow alone)"
        ) from None
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches():
        yield from batch.to_pylist()
