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
from pydantic import ConfigDict, Field

from ragprune.integrations._common import metadata_for, rank_texts
from ragprune.pipeline.process import RerankPruner


class RagpruneCompressor(BaseDocumentCompressor):
    """Reranks documents for the query and prunes each one's ``page_content`` to the kept sentences.

    Returns new ``Document``s best first (the inputs are not modified): the same ``id``, the original
    metadata plus the ``ragprune_*`` keys (score, logit, rank, input index, kept spans, compression and
    the original text under ``ragprune_original_text``). A document leaves the list only through
    ``top_n`` or ``score_threshold``; a kept document whose sentences were all pruned comes back with
    empty ``page_content``. ``acompress_documents`` runs the model in a worker thread.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pruner: RerankPruner = Field(exclude=True, repr=False)
    """The loaded model, e.g. ``RerankPruner.load()``."""
    top_n: int | None = Field(default=None, ge=1)
    """Keep at most this many documents (None: all)."""
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Keep only documents whose calibrated relevance probability is at least this."""
    prune_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Keep a sentence when its keep score is above this (None: the model's own threshold)."""

    def compress_documents(
        self,
        documents: Sequence[LangChainDocument],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[LangChainDocument]:
        if not documents:
            return []
        results = rank_texts(
            self.pruner,
            query,
            [doc.page_content for doc in documents],
            top_n=self.top_n,
            score_threshold=self.score_threshold,
            prune_threshold=self.prune_threshold,
        )
        return [
            _pruned_copy(documents[ranked.index], ranked.pruned_text, metadata_for(ranked))
            for ranked in results
        ]


def _pruned_copy(document: LangChainDocument, text: str, added: dict[str, Any]) -> LangChainDocument:
    return document.model_copy(update={"page_content": text, "metadata": {**document.metadata, **added}})
