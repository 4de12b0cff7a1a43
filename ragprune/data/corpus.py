"""Corpora and query sets from either supported layout, chosen by file name.

``*.jsonl`` (optionally ``.gz``) is read as BEIR (``corpus.jsonl`` / ``queries.jsonl``); anything else as
TREC-style ``id<TAB>text`` lines.
"""

from __future__ import annotations

from pathlib import Path

from ragprune.data.beir import read_beir_corpus, read_beir_queries
from ragprune.data.trec import read_passages, read_topics
from ragprune.types import Document


def read_corpus(path: str | Path) -> dict[str, Document]:
    """Doc id -> :class:`Document` from a BEIR ``corpus.jsonl`` or a ``pid<TAB>text`` passages file."""
    if _is_jsonl(path):
        return read_beir_corpus(path)
    return {pid: Document(pid, text) for pid, text in read_passages(path).items()}


def read_queries(path: str | Path) -> dict[str, str]:
    """Query id -> text from a BEIR ``queries.jsonl`` or a ``qid<TAB>text`` topics file."""
    return read_beir_queries(path) if _is_jsonl(path) else read_topics(path)


def _is_jsonl(path: str | Path) -> bool:
    return ".jsonl" in Path(path).suffixes
