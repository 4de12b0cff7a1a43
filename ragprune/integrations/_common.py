"""What the framework integrations share: one ranking call and the metadata each passage gets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ragprune.types import json_float

if TYPE_CHECKING:
    from ragprune.pipeline.process import RerankPruner
    from ragprune.ranking import RankedDocument, RankedResults

SCORE_KEY = "ragprune_score"
ORIGINAL_TEXT_KEY = "ragprune_original_text"
# The keys every returned passage's metadata gains (``metadata_for`` documents each).
METADATA_KEYS: tuple[str, ...] = (
    SCORE_KEY,
    "ragprune_logit",
    "ragprune_rank",
    "ragprune_index",
    "ragprune_kept_spans",
    "ragprune_compression",
    ORIGINAL_TEXT_KEY,
)


def rank_texts(
    pruner: RerankPruner,
    query: str,
    texts: Sequence[str],
    *,
    top_n: int | None,
    score_threshold: float | None,
    prune_threshold: float | None,
) -> RankedResults:
    """Rank and prune passage texts; keep the ``top_n`` best whose score is >= ``score_threshold``.

    Each ranked passage's ``index`` is its position in ``texts``: the caller maps results back to its
    own objects by it, so nothing the caller attached to a passage has to travel through ragprune.
    """
    from ragprune.ranking import prune

    results = prune(pruner, query, list(texts), threshold=prune_threshold, top_k=top_n)
    return results if score_threshold is None else results.above(score_threshold)


def metadata_for(ranked: RankedDocument) -> dict[str, Any]:
    """The ``METADATA_KEYS`` entries for one ranked passage (JSON-safe values only)."""
    return {
        SCORE_KEY: ranked.score,  # calibrated relevance probability, 0..1
        "ragprune_logit": json_float(ranked.logit),  # raw relevance logit; None for an empty passage
        "ragprune_rank": ranked.rank,  # 1-based rank among the passages of this call
        "ragprune_index": ranked.index,  # position in the list the caller passed in
        # [start, end) character offsets into the original text
        "ragprune_kept_spans": [span.to_list() for span in ranked.kept_spans],
        "ragprune_compression": ranked.compression,  # share of the original characters pruning removed
        ORIGINAL_TEXT_KEY: ranked.text,  # the passage text before pruning
    }
