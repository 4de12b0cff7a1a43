"""LangChain: ``RagpruneCompressor``, a document compressor that reranks and prunes retrieved documents.

Use it on its own (``compress_documents``) or as the ``base_compressor`` of LangChain's
``ContextualCompressionRetriever``. Needs ``langchain-core`` (``pip install ragprune[integrations]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor
from langchain_core.documents import Document as LangChainDocument
from pydantic import ConfigDict, Field, field_validator

from ragprune.fusion import parse_fusion
from ragprune.integrations._common import (
    TITLE_KEY,
    metadata_for,
    rank_texts,
    retriever_scores,
    shipped_pruner,
)
from ragprune.rerankers.base import Reranker


class RagpruneCompressor(BaseDocumentCompressor):
    """Reranks documents for the query and prunes each one's ``page_content`` to the kept sentences.

    Returns new ``Document``s best first (the inputs are not modified): the same ``id``, the original
    metadata plus the ``ragprune_*`` keys (score, logit, rank, input index, kept spans, compression and
    the original text under ``ragprune_original_text``). ``metadata["title"]``, when a string, is read
    as the document's title (context for the score, never pruned). A document leaves the list only
    through ``top_n``, ``score_threshold`` or, with ``drop_empty=True``, when pruning kept none of its
    sentences; otherwise such a document comes back with empty ``page_content``.
    ``RagpruneCompressor()`` with no arguments uses the model shipped with ragprune.
    ``acompress_documents`` runs the model in a worker thread.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pruner: Reranker | None = Field(default=None, exclude=True, repr=False)
    """The loaded model, e.g. ``RerankPruner.load("path")`` (any ``ragprune.rerankers.Reranker``); None: the
    shipped model, loaded on first use."""
    top_n: int | None = Field(default=None, ge=1)
    """Keep at most this many documents (None: all)."""
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Keep only documents whose calibrated relevance probability is at least this."""
    prune_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Keep a sentence when its keep score is above this (None: the model's own threshold)."""
    drop_empty: bool = False
    """Leave out documents whose pruning kept nothing (``top_n`` then counts the non-empty ones)."""
    truncate_query: bool = False
    """Cut a query longer than the model's ``max_query_tokens`` to its first tokens (else ``ValueError``)."""
    hops: int = Field(default=1, ge=1, le=2)
    """2: multi-hop pruning (``RerankPruner.process``'s ``hops``): only the evidence chain of the two
    best documents and four others keeps sentences; documents whose ``metadata["title"]`` the query or that
    evidence names join the chain first. Needs a ``RerankPruner``."""
    fusion: str | None = None
    """Fuse the model's logit with the retriever's score (``metadata[score_key]``) to order the documents:
    ``"none"``, ``"interpolate[:alpha]"`` or ``"rrf[:k]"`` (``ragprune.fusion``). None: ``DEFAULT_FUSION``
    when every document has a score, the model alone otherwise. An explicit fusion other than ``"none"``
    needs every document's score (else ``ValueError``)."""
    score_key: str = "score"
    """The metadata key holding the retriever's score (LangChain's retrievers keep none by default; e.g.
    Cohere's reranker writes ``relevance_score``)."""

    @field_validator("fusion")
    @classmethod
    def _known_fusion(cls, value: str | None) -> str | None:
        if value is not None:
            parse_fusion(value)  # a bad name fails when the object is made, not at the first query
        return value

    def compress_documents(
        self,
        documents: Sequence[LangChainDocument],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[LangChainDocument]:
        if not documents:
            return []
        results = rank_texts(
            self.pruner or shipped_pruner(),
            query,
            [doc.page_content for doc in documents],
            titles=[doc.metadata.get(TITLE_KEY) for doc in documents],
            top_n=self.top_n,
            score_threshold=self.score_threshold,
            prune_threshold=self.prune_threshold,
            drop_empty=self.drop_empty,
            truncate_query=self.truncate_query,
            first_stage_scores=retriever_scores(
                [doc.metadata.get(self.score_key) for doc in documents],
                self.fusion,
                f"metadata[{self.score_key!r}]",
            ),
            fusion=self.fusion,
            hops=self.hops,
        )
        return [
            _pruned_copy(documents[ranked.index], ranked.pruned_text, metadata_for(ranked))
            for ranked in results
        ]


def _pruned_copy(document: LangChainDocument, text: str, added: dict[str, Any]) -> LangChainDocument:
    return document.model_copy(update={"page_content": text, "metadata": {**document.metadata, **added}})


def as_langchain_compressor(reranker: Reranker, k: int | None = None, **options: Any) -> RagpruneCompressor:
    """A ``RagpruneCompressor`` on ``reranker`` keeping the ``k`` best documents (the name AnswerDotAI
    ``rerankers`` uses); ``options`` are its other fields (``score_threshold``, ``prune_threshold``,
    ``drop_empty``, ``fusion``)."""
    return RagpruneCompressor(pruner=reranker, top_n=k, **options)
