"""What the framework integrations share: the model they default to, one ranking call and the metadata
each passage gets."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ragprune.types import json_float

if TYPE_CHECKING:
    from ragprune.fusion import Fusion
    from ragprune.pipeline.process import RerankPruner
    from ragprune.ranking import RankedDocument, RankedResults
    from ragprune.rerankers.base import Reranker

SCORE_KEY = "ragprune_score"
ORIGINAL_TEXT_KEY = "ragprune_original_text"
# The keys every returned passage's metadata gains (``metadata_for`` documents each).
METADATA_KEYS: tuple[str, ...] = (
    SCORE_KEY,
    "ragprune_logit",
    "ragprune_fused_score",
    "ragprune_rank",
    "ragprune_index",
    "ragprune_kept_spans",
    "ragprune_compression",
    ORIGINAL_TEXT_KEY,
)


TITLE_KEY = "title"  # a passage's metadata["title"], when a string, is read as its title


@functools.cache
def shipped_pruner() -> RerankPruner:
    """The model shipped with ragprune, loaded on first use and shared by every integration object
    created without a ``pruner`` (as LangChain's ``FlashrankRerank()`` loads its default model)."""
    from ragprune.pipeline.process import RerankPruner

    return RerankPruner.load()


def rank_texts(
    pruner: Reranker,
    query: str,
    texts: Sequence[str],
    *,
    titles: Sequence[Any] | None = None,
    top_n: int | None,
    score_threshold: float | None,
    prune_threshold: float | None,
    drop_empty: bool = False,
    truncate_query: bool = False,
    first_stage_scores: Sequence[float] | None = None,
    fusion: Fusion | str | None = None,
    hops: int = 1,
) -> RankedResults:
    """Rank and prune passage texts; keep the ``top_n`` best whose score is >= ``score_threshold`` and,
    with ``drop_empty``, whose pruning kept something.

    ``titles[i]`` (a string; anything else is ignored) is passage ``i``'s title: read as context, never
    pruned. Each ranked passage's ``index`` is its position in ``texts``: the caller maps results back
    to its own objects by it, so nothing the caller attached to a passage has to travel through ragprune.
    ``top_n`` counts the passages that remain after ``drop_empty``. ``truncate_query`` cuts a query over
    the model's ``max_query_tokens`` to its first tokens instead of raising ``ValueError``.
    ``first_stage_scores`` and ``fusion`` as in :func:`ragprune.ranking.rank` (see :func:`retriever_scores`),
    ``hops`` as in :func:`ragprune.ranking.prune`.
    """
    from ragprune.ranking import RankedResults, prune

    titles = titles or [None] * len(texts)
    docs = [
        {"text": text, "title": title} if isinstance(title, str) and title else text
        for text, title in zip(texts, titles, strict=True)
    ]
    # filters first, then the cut: the ``top_n`` best that pass them (with fusion the order is not the
    # probability's, so cutting first could return fewer documents than pass)
    top_k = None if drop_empty or score_threshold is not None else top_n
    results = prune(
        pruner,
        query,
        docs,
        threshold=prune_threshold,
        top_k=top_k,
        truncate=truncate_query,
        first_stage_scores=first_stage_scores,
        fusion=fusion,
        hops=hops,
    )
    if score_threshold is not None:
        results = results.above(score_threshold)
    if drop_empty:
        results = RankedResults(results.query, tuple(doc for doc in results if doc.kept_spans))
    if top_k is None and top_n is not None:
        results = RankedResults(results.query, tuple(results)[:top_n])
    return results


def retriever_scores(scores: Sequence[Any], fusion: Fusion | str | None, where: str) -> list[float] | None:
    """The retriever's scores to fuse with, from one value per passage (``None`` where it has none).

    With ``fusion=None`` (the integrations' default) they are used when every passage has a numeric score
    (then ``DEFAULT_FUSION`` applies) and ignored otherwise (the model alone ranks). An explicit fusion
    other than ``"none"`` needs every score: ``ValueError`` naming the first passage without one and
    ``where`` the score is read from (e.g. ``"NodeWithScore.score"``).
    """
    from ragprune.fusion import is_finite_number, parse_fusion

    missing = [i for i, score in enumerate(scores) if not is_finite_number(score)]
    if fusion is None:
        return None if missing else [float(score) for score in scores]
    if not parse_fusion(fusion).needs_first_stage:
        return None
    if missing:
        raise ValueError(
            f"fusion={str(fusion)!r} needs the retriever's score of every passage, but passage {missing[0]} "
            f"has {scores[missing[0]]!r} in {where} ({len(missing)} of {len(scores)} lack one); give every "
            "passage a numeric score there, or use fusion='none'"
        )
    return [float(score) for score in scores]


def metadata_for(ranked: RankedDocument) -> dict[str, Any]:
    """The ``METADATA_KEYS`` entries for one ranked passage (JSON-safe values only)."""
    return {
        SCORE_KEY: ranked.score,  # calibrated relevance probability, 0..1
        "ragprune_logit": json_float(ranked.logit),  # raw relevance logit; None for an empty passage
        # the score that ordered the list when fused with the retriever's; None without fusion
        "ragprune_fused_score": None if ranked.fused_score is None else json_float(ranked.fused_score),
        "ragprune_rank": ranked.rank,  # 1-based rank among the passages of this call
        "ragprune_index": ranked.index,  # position in the list the caller passed in
        # [start, end) character offsets into the original text
        "ragprune_kept_spans": [span.to_list() for span in ranked.kept_spans],
        "ragprune_compression": ranked.compression,  # share of the original characters pruning removed
        ORIGINAL_TEXT_KEY: ranked.text,  # the passage text before pruning
    }
