"""LlamaIndex: ``RagprunePostprocessor``, a node postprocessor that reranks and prunes retrieved nodes.

Pass it in ``node_postprocessors=[...]`` of a query engine or call ``postprocess_nodes`` directly.
Needs ``llama-index-core`` (``pip install ragprune[integrations]``).
"""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import Field, field_validator
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle

from ragprune.fusion import parse_fusion
from ragprune.integrations._common import (
    METADATA_KEYS,
    TITLE_KEY,
    metadata_for,
    rank_texts,
    retriever_scores,
    shipped_pruner,
)
from ragprune.rerankers.base import Reranker
from ragprune.types import json_float

RETRIEVAL_SCORE_KEY = "ragprune_retrieval_score"


class RagprunePostprocessor(BaseNodePostprocessor):
    """Reranks nodes for the query and prunes each node's text to the kept sentences.

    One node in gives at most one node out, best first, as copies (the inputs are not modified):
    ``score`` is the calibrated relevance probability, or with ``fusion`` the fused score that orders
    the nodes (the probability then stays under ``ragprune_score``); the node keeps its id, relationships and
    metadata, and the metadata gains the ``ragprune_*`` keys (the node's incoming score under
    ``ragprune_retrieval_score``, the original text under ``ragprune_original_text``). These keys are
    excluded from the text LlamaIndex shows the LLM and the embedder. ``metadata["title"]``, when a
    string, is read as the node's title (context for the score, never pruned). A node leaves the list
    only through ``top_n``, ``score_threshold`` or, with ``drop_empty=True``, when pruning kept none of
    its sentences (without it such a node reaches the LLM with empty text).
    ``RagprunePostprocessor()`` with no arguments uses the model shipped with ragprune. The async path
    runs the model in a worker thread.
    """

    pruner: Reranker | None = Field(default=None, exclude=True, repr=False)
    """The loaded model, e.g. ``RerankPruner.load("path")`` (any ``ragprune.rerankers.Reranker``); None: the
    shipped model, loaded on first use."""
    top_n: int | None = Field(default=None, ge=1)
    """Keep at most this many nodes (None: all)."""
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Keep only nodes whose calibrated relevance probability is at least this."""
    prune_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Keep a sentence when its keep score is above this (None: the model's own threshold)."""
    drop_empty: bool = False
    """Leave out nodes whose pruning kept nothing (``top_n`` then counts the non-empty ones)."""
    truncate_query: bool = False
    """Cut a query longer than the model's ``max_query_tokens`` to its first tokens (else ``ValueError``)."""
    hops: int = Field(default=1, ge=1, le=2)
    """2: multi-hop pruning (``RerankPruner.process``'s ``hops``): only the evidence chain of the two
    best nodes and four others keeps sentences; nodes whose ``metadata["title"]`` the query or that
    evidence names join the chain first. Needs a ``RerankPruner``."""
    fusion: str | None = None
    """Fuse the model's logit with the retriever's score (``NodeWithScore.score``) to order the nodes:
    ``"none"``, ``"interpolate[:alpha]"`` or ``"rrf[:k]"`` (``ragprune.fusion``). None: ``DEFAULT_FUSION``
    when every node has a score, the model alone otherwise. An explicit fusion other than ``"none"``
    needs every node's score (else ``ValueError``)."""

    @field_validator("fusion")
    @classmethod
    def _known_fusion(cls, value: str | None) -> str | None:
        if value is not None:
            parse_fusion(value)  # a bad name fails when the object is made, not at the first query
        return value

    @classmethod
    def class_name(cls) -> str:
        return "RagprunePostprocessor"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("RagprunePostprocessor needs the query: pass query_str=... or query_bundle=...")
        if not nodes:
            return []
        results = rank_texts(
            self.pruner or shipped_pruner(),
            query_bundle.query_str,
            [scored.node.get_content(metadata_mode=MetadataMode.NONE) for scored in nodes],
            titles=[scored.node.metadata.get(TITLE_KEY) for scored in nodes],
            top_n=self.top_n,
            score_threshold=self.score_threshold,
            prune_threshold=self.prune_threshold,
            drop_empty=self.drop_empty,
            truncate_query=self.truncate_query,
            first_stage_scores=retriever_scores(
                [scored.score for scored in nodes], self.fusion, "NodeWithScore.score"
            ),
            fusion=self.fusion,
            hops=self.hops,
        )
        out = []
        for ranked in results:
            source = nodes[ranked.index]
            added = {**metadata_for(ranked), RETRIEVAL_SCORE_KEY: source.score}
            node = _pruned_copy(source, ranked.pruned_text, added)
            score = ranked.score if ranked.fused_score is None else json_float(ranked.fused_score)
            out.append(NodeWithScore(node=node, score=score))
        return out


def _pruned_copy(source: NodeWithScore, text: str, added: dict[str, Any]) -> BaseNode:
    """A copy of the node with ``text`` as content and ``added`` metadata, hidden from LLM and embedder."""
    node = source.node.model_copy()
    node.metadata = {**source.node.metadata, **added}
    hidden = [*METADATA_KEYS, RETRIEVAL_SCORE_KEY]
    node.excluded_llm_metadata_keys = _extend(source.node.excluded_llm_metadata_keys, hidden)
    node.excluded_embed_metadata_keys = _extend(source.node.excluded_embed_metadata_keys, hidden)
    node.set_content(text)
    return node


def _extend(keys: list[str], more: list[str]) -> list[str]:
    return [*keys, *(key for key in more if key not in keys)]
