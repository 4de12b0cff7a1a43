"""Corpora, query sets and qrels from either supported layout (BEIR or TREC-style), detected per file.

Corpora and queries: ``*.jsonl`` (optionally ``.gz``) is read as BEIR (``corpus.jsonl`` /
``queries.jsonl``), anything else as ``id<TAB>text`` lines. Qrels: three tab-separated columns are BEIR
(``qrels/<split>.tsv``), anything else TREC (``query_id iteration doc_id relevance``).
"""

from __future__ import annotations

from pathlib import Path

from ragprune.data.beir import read_beir_corpus, read_beir_qrels, read_beir_queries
from ragprune.data.files import numbered_lines
from ragprune.data.trec import Qrels, read_passages, read_qrels, read_topics
from ragprune.types import Document


def read_corpus(path: str | Path) -> dict[str, Document]:
    """Doc id -> :class:`Document` from a BEIR ``corpus.jsonl`` or a ``pid<TAB>text`` passages file."""
    if _is_jsonl(path):
        return read_beir_corpus(path)
    return {pid: Document(pid, text) for pid, text in read_passages(path).items()}


def read_queries(path: str | Path) -> dict[str, str]:
    """Query id -> text from a BEIR ``queries.jsonl`` or a ``qid<TAB>text`` topics file."""
    return read_beir_queries(path) if _is_jsonl(path) else read_topics(path)


def read_any_qrels(path: str | Path) -> Qrels:
    """Query id -> doc id -> relevance from TREC qrels or a BEIR ``qrels/<split>.tsv``."""
    first = next((line for _, line in numbered_lines(path, "qrels")), "")
    return read_beir_qrels(path) if len(first.split("\t")) == 3 else read_qrels(path)


def _is_jsonl(path: str | Path) -> bool:
    return ".jsonl" in Path(path).suffixes
