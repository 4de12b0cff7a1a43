"""Reranking backends behind one interface (:class:`Reranker`); each backend loads lazily.

- :class:`~ragprune.pipeline.process.RerankPruner` (also ``SharedEncoderReranker``): the shared encoder that
  reranks and prunes in one pass;
- :class:`~ragprune.rerankers.bi_encoder.BiEncoderReranker`: bi-encoder cosine, the free baseline;
- :class:`~ragprune.rerankers.first_llm.FirstLLM`: FIRST listwise reranking (first-token logits over letter
  identifiers, windows 20/10) with a Hugging Face causal LM from a local folder;
- :class:`~ragprune.rerankers.full_rank_llm.FullRankLLM`: full ranking of every candidate in one prompt
  (RankMistral100's format), generated permutation repaired and reported.
"""

from __future__ import annotations

from ragprune.lazy import lazy_exports
from ragprune.rerankers.base import Reranker

_LAZY = {
    "SharedEncoderReranker": "ragprune.pipeline.process:RerankPruner",
    "RerankPruner": "ragprune.pipeline.process",
    "BiEncoderReranker": "ragprune.rerankers.bi_encoder",
    "FirstLLM": "ragprune.rerankers.first_llm",
    "FullRankLLM": "ragprune.rerankers.full_rank_llm",
}

__getattr__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "BiEncoderReranker",
    "FirstLLM",
    "FullRankLLM",
    "RerankPruner",
    "Reranker",
    "SharedEncoderReranker",
]
