"""First-stage retrieval behind one interface (:class:`Retriever`): ``index(corpus)`` then
``search(queries, k)`` returning a run (query id -> doc id -> score).

Backends: ``bm25s`` (default, no Java), ``lucene`` (Pyserini BM25, Java 17), ``dense``
(sentence-transformers + faiss). Backends load their libraries only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ragprune.retrieval.base import Retriever, retrieval_text

if TYPE_CHECKING:
    from ragprune.retrieval.bm25 import BM25sRetriever
    from ragprune.retrieval.dense import DenseRetriever
    from ragprune.retrieval.lucene import LuceneRetriever

#: Backend name -> (module, class), in the order the CLI lists them; the first is the default.
BACKENDS: dict[str, tuple[str, str]] = {
    "bm25s": ("ragprune.retrieval.bm25", "BM25sRetriever"),
    "lucene": ("ragprune.retrieval.lucene", "LuceneRetriever"),
    "dense": ("ragprune.retrieval.dense", "DenseRetriever"),
}
_CLASSES = {class_name: module for module, class_name in BACKENDS.values()}


def get_retriever(name: str = "bm25s", **options: Any) -> Retriever:
    """A new retriever of backend ``name``, constructed with ``options`` (e.g. ``k1``, ``b``, ``model``)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown retrieval backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, class_name = BACKENDS[name]
    return getattr(importlib.import_module(module), class_name)(**options)


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        return getattr(importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "BM25sRetriever",
    "DenseRetriever",
    "LuceneRetriever",
    "Retriever",
    "get_retriever",
    "retrieval_text",
]
