"""BM25 with bm25s: pure Python/NumPy, no Java needed (the default backend)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from ragprune.retrieval.base import Retriever, Run, retrieval_text
from ragprune.types import Document

TIE_MARGIN = 32
"""Extra hits fetched beyond ``k`` so that documents tied at rank ``k`` are cut by corpus order."""


class BM25sRetriever(Retriever):
    """Okapi BM25 (Lucene's variant) over lower-cased, English-stopworded, Snowball-stemmed word tokens.

    ``k1``/``b`` default to bm25s's own defaults (1.5 / 0.75). Stemming needs PyStemmer; without it,
    ``stemmer="english"`` raises an ImportError that says what to install (pass ``stemmer=None`` to skip).
    """

    name = "bm25s"

    def __init__(
        self, k1: float = 1.5, b: float = 0.75, stemmer: str | None = "english", stopwords: str | None = "en"
    ) -> None:
        super().__init__()
        self.k1, self.b = k1, b
        self.stemmer_language, self.stopwords = stemmer, stopwords
        self._stemmer = _load_stemmer(stemmer)
        self._model: Any = None  # bm25s.BM25 once indexed (bm25s ships no type information)
        self._doc_ids: list[str] = []

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        bm25s = import_bm25s()
        return bm25s.tokenize(
            texts,
            lower=True,
            stopwords=self.stopwords,
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )

    def _build(self, corpus: Mapping[str, Document]) -> None:
        bm25s = import_bm25s()
        self._doc_ids = list(corpus)
        self._model = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        self._model.index(
            self._tokenize([retrieval_text(doc) for doc in corpus.values()]), show_progress=False
        )

    def _search(self, queries: Mapping[str, str], k: int) -> Run:
        """The top ``k`` per query, equal scores in corpus order: bm25s's top-k selection leaves ties in
        the order NumPy's partition happens to give (it differed between an AMD and an Intel machine, so
        groups built from one run did not match the other's). ``TIE_MARGIN`` more hits are fetched and
        cut here; a query whose tie at rank ``k`` runs past them is searched again over the whole corpus."""
        qids = list(queries)
        tokens = self._tokenize([queries[qid] for qid in qids])
        total = len(self._doc_ids)
        depth = min(k + TIE_MARGIN, total)
        indices, scores = self._retrieve(tokens, depth)
        run: Run = {}
        again: list[int] = []
        for q, (row_indices, row_scores) in enumerate(zip(indices, scores, strict=True)):
            kth = np.sort(row_scores)[-k]
            if depth < total and kth > 0 and kth == row_scores.min():  # scores of 0 are left out anyway
                again.append(q)
            else:
                run[qids[q]] = self._top(row_indices, row_scores, k)
        if again:  # ties wider than the margin: every document's score, so the cut is by corpus order
            indices, scores = self._retrieve([tokens[q] for q in again], total)
            for q, row_indices, row_scores in zip(again, indices, scores, strict=True):
                run[qids[q]] = self._top(row_indices, row_scores, k)
        return {qid: run[qid] for qid in qids}

    def _retrieve(self, tokens: list[list[str]], depth: int) -> tuple[np.ndarray, np.ndarray]:
        return self._model.retrieve(tokens, k=depth, show_progress=False, backend_selection="numpy")

    def _top(self, indices: np.ndarray, scores: np.ndarray, k: int) -> dict[str, float]:
        """The ``k`` best hits by score, then corpus order, as doc id -> score (scores of 0 left out)."""
        order = np.lexsort((indices, -scores))[:k]
        return {self._doc_ids[int(i)]: float(s) for i, s in zip(indices[order], scores[order]) if s > 0}


def import_bm25s() -> Any:
    """The ``bm25s`` module, imported so that it cannot take most of a GPU.

    Where JAX is installed, bm25s's top-k module starts JAX at import, and JAX then reserves 75% of the
    GPU's memory up front (XLA's default): a reranker in the same process runs out of memory (seen on an
    H200 with two processes). Unless the caller set it or JAX already runs, JAX here allocates on demand
    (``XLA_PYTHON_CLIENT_PREALLOCATE=false``), and retrieval asks bm25s for its NumPy top-k, as on machines
    without JAX.
    """
    if "jax" not in sys.modules:
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import bm25s

    return bm25s


def _load_stemmer(language: str | None) -> Any:
    if language is None:
        return None
    try:
        import Stemmer
    except ImportError as error:
        raise ImportError(
            "bm25s stemming needs PyStemmer: pip install PyStemmer (or pass stemmer=None)"
        ) from error
    return Stemmer.Stemmer(language)
