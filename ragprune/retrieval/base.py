"""The first-stage retrieval interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from ragprune.data.trec import Run
from ragprune.types import Document


class Retriever(ABC):
    """Index a corpus once, then return the top ``k`` documents of each query as a run
    (query id -> doc id -> score, higher is better)."""

    #: The name :func:`ragprune.retrieval.get_retriever` knows this backend by.
    name: str = ""

    def __init__(self) -> None:
        self._num_docs = 0

    def index(self, corpus: Mapping[str, Document]) -> None:
        """Build the index over ``corpus`` (doc id -> document); replaces any earlier index."""
        if not corpus:
            raise ValueError(f"{self.name}: the corpus is empty; pass at least one document")
        empty = [doc_id for doc_id, doc in corpus.items() if not retrieval_text(doc).strip()]
        if empty:
            raise ValueError(
                f"{self.name}: {len(empty)} documents have no title or text (e.g. {', '.join(empty[:3])}); "
                "remove them or add their text"
            )
        self._build(corpus)
        self._num_docs = len(corpus)

    def search(self, queries: Mapping[str, str], k: int = 100) -> Run:
        """The top ``min(k, corpus size)`` documents of each query (query id -> doc id -> score).

        Documents that share no term with the query (lexical backends) are not returned.
        """
        if self._num_docs == 0:
            raise RuntimeError(f"{self.name}: call index(corpus) before search()")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        blank = [qid for qid, text in queries.items() if not text.strip()]
        if blank:
            raise ValueError(f"{len(blank)} queries are empty (e.g. {', '.join(blank[:3])}); pass query text")
        if not queries:
            return {}
        return self._search(queries, min(k, self._num_docs))

    @abstractmethod
    def _build(self, corpus: Mapping[str, Document]) -> None:
        """Index a non-empty corpus whose documents all have text."""

    @abstractmethod
    def _search(self, queries: Mapping[str, str], k: int) -> Run:
        """Search non-empty queries with ``1 <= k <= corpus size``."""


def retrieval_text(document: Document) -> str:
    """The text a backend indexes: title and body joined by a space (the BEIR / Pyserini "flat" field)."""
    return f"{document.title} {document.text}" if document.title else document.text
