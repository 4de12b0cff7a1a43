"""BEIR-format data sets: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

Corpus records are ``{"_id", "title", "text", ...}``; the title stays separate (``Document.title``) and
every other field is kept in ``Document.metadata``. Queries are ``{"_id", "text", ...}``; qrels are
``query-id<TAB>corpus-id<TAB>score`` with a header line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragprune.data.errors import DataFormatError, DataMismatchError
from ragprune.data.files import field_of, numbered_json_objects, numbered_lines, split_columns
from ragprune.data.paths import resolve_dataset_dir
from ragprune.data.trec import DUPLICATE_JUDGEMENT, Qrels, add_pair
from ragprune.types import Document


@dataclass(frozen=True)
class BeirDataset:
    """One split of a BEIR data set.

    ``queries`` holds the queries judged in the split (as BEIR's own loader does); the extra fields of
    each query record, if any, are in ``query_metadata``.
    """

    name: str
    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: Qrels
    query_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_beir(name_or_path: str | Path, split: str = "test") -> BeirDataset:
    """Load a BEIR data set by directory path or by name under ``<data root>/beir`` (e.g. ``"scifact"``)."""
    directory = resolve_dataset_dir(name_or_path, "beir")
    qrels_path = directory / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (directory / "qrels").glob("*.tsv"))
        raise FileNotFoundError(
            f"no qrels for split {split!r}: {qrels_path} does not exist (available splits: "
            f"{', '.join(splits) or 'none'})"
        )
    corpus = read_beir_corpus(directory / "corpus.jsonl")
    all_queries, all_metadata = _read_queries(directory / "queries.jsonl")
    qrels = read_beir_qrels(qrels_path)
    missing_queries = sorted(set(qrels) - set(all_queries))
    if missing_queries:
        raise DataMismatchError(
            f"{len(missing_queries)} query ids in {qrels_path} are not in {directory / 'queries.jsonl'} "
            f"(e.g. {', '.join(missing_queries[:5])}); use the qrels and queries of the same data set"
        )
    missing_docs = sorted({doc for judged in qrels.values() for doc in judged if doc not in corpus})
    if missing_docs:
        raise DataMismatchError(
            f"{len(missing_docs)} corpus ids in {qrels_path} are not in {directory / 'corpus.jsonl'} "
            f"(e.g. {', '.join(missing_docs[:5])}); use the qrels and corpus of the same data set"
        )
    queries = {qid: all_queries[qid] for qid in sorted(qrels)}
    metadata = {qid: all_metadata[qid] for qid in queries if qid in all_metadata}
    return BeirDataset(directory.name, corpus, queries, qrels, metadata)


def read_beir_corpus(path: str | Path) -> dict[str, Document]:
    """Doc id -> :class:`Document` from a BEIR ``corpus.jsonl`` (title apart, other fields in metadata)."""
    corpus: dict[str, Document] = {}
    for lineno, record in numbered_json_objects(path, "BEIR corpus"):
        doc_id = _record_id(record, path, lineno, corpus)
        text = field_of(record, "text", str, path, lineno)
        title = field_of(record, "title", str, path, lineno, default="")
        if not text.strip() and not title.strip():
            raise DataFormatError.at(
                path, lineno, f"document {doc_id!r} has empty title and text", "add text or remove the record"
            )
        metadata = {k: v for k, v in record.items() if k not in ("_id", "title", "text")}
        corpus[doc_id] = Document(doc_id, text, title, metadata)
    return corpus


def read_beir_queries(path: str | Path) -> dict[str, str]:
    """Query id -> text from a BEIR ``queries.jsonl`` (all queries, whatever split judges them)."""
    return _read_queries(path)[0]


def _read_queries(path: str | Path) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    queries: dict[str, str] = {}
    metadata: dict[str, dict[str, Any]] = {}
    for lineno, record in numbered_json_objects(path, "BEIR queries"):
        qid = _record_id(record, path, lineno, queries)
        text = field_of(record, "text", str, path, lineno)
        if not text.strip():
            raise DataFormatError.at(path, lineno, f"query {qid!r} has empty text", "add text or remove it")
        queries[qid] = text
        extra = {k: v for k, v in record.items() if k not in ("_id", "text")}
        if extra:
            metadata[qid] = extra
    return queries, metadata


def _record_id(record: dict[str, Any], path: str | Path, lineno: int, seen: dict[str, Any]) -> str:
    raw = record.get("_id")
    if isinstance(raw, bool) or not isinstance(raw, (str, int)) or not str(raw).strip():
        raise DataFormatError.at(
            path, lineno, f"missing or invalid '_id' ({raw!r})", "give every record a non-empty string '_id'"
        )
    ident = str(raw)
    if ident in seen:
        raise DataFormatError.at(
            path, lineno, f"duplicate _id {ident!r}", "ids must be unique: remove or rename one"
        )
    return ident


def read_beir_qrels(path: str | Path) -> Qrels:
    """Query id -> doc id -> integer score from a BEIR ``qrels/<split>.tsv`` (header line optional)."""
    qrels: Qrels = {}
    first = True
    for lineno, line in numbered_lines(path, "BEIR qrels"):
        is_header, first = first and line.split("\t")[-1].strip() == "score", False
        if is_header:
            continue
        fields = split_columns(
            line,
            "query-id corpus-id score",
            path,
            lineno,
            "use BEIR qrels format (header 'query-id<TAB>corpus-id<TAB>score')",
            separator="\t",
        )
        qid, doc_id, score = (f.strip() for f in fields)
        try:
            grade = int(score)
        except ValueError:
            raise DataFormatError.at(
                path, lineno, f"score {score!r} is not an integer", "write relevance scores as integers"
            ) from None
        add_pair(qrels, qid, doc_id, grade, path, lineno, DUPLICATE_JUDGEMENT)
    return qrels
