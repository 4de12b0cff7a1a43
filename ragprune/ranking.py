"""The ranking API users know from cross-encoder rerankers: ``rank`` and ``prune`` one query's documents.

Results come back best first as ``RankedResults``: iterate them, index them (``results[0]`` is the
best), cut them with ``.top_k(k)``, look a document up by its id (``results["doc-3"]``). Each
``RankedDocument`` keeps the caller's document (id, text, title, metadata) untouched and adds the
score, the rank, the input position and what pruning kept, as character spans into the original text.
Around them, the calls of the anchors' APIs: ``rank(..., doc_ids=, metadata=)`` and ``rank_async``
(rerankers) and ``predict(pairs)`` (sentence-transformers' ``CrossEncoder``); rerankers'
``as_langchain_compressor(k=)`` is in ``ragprune.integrations.langchain`` (the core does not import the
integrations).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast, overload

from ragprune.fusion import Fusion, best_first, resolve_fusion
from ragprune.pipeline.inputs import PassageLike, QueryLike
from ragprune.pipeline.results import PassageResult, SentenceScore
from ragprune.types import Document, Query, Span, json_float

if TYPE_CHECKING:
    import numpy as np

    from ragprune.rerankers.base import Reranker


@dataclass(frozen=True)
class RankedDocument:
    """One document of a ranking: the caller's document plus its score and what pruning kept.

    ``score`` is the calibrated relevance probability (0..1, comparable across queries); ``logit`` the
    raw relevance logit (``-inf`` for an empty document). ``index`` is the position in the caller's list.
    ``fused_score`` is the score that ordered the list when the call fused the logit with first-stage
    scores (``ragprune.fusion``; ``-inf`` for an empty document), else ``None``; ``rank`` follows it.
    """

    result: PassageResult
    fused_score: float | None = None

    @property
    def document(self) -> Document:
        return self.result.document

    @property
    def doc_id(self) -> str:
        return self.result.document.id

    @property
    def text(self) -> str:
        """The original, unpruned text."""
        return self.result.document.text

    @property
    def metadata(self) -> dict[str, Any]:
        return self.result.document.metadata

    @property
    def index(self) -> int:
        return self.result.index

    @property
    def rank(self) -> int:
        return self.result.rank

    @property
    def score(self) -> float:
        return self.result.probability

    @property
    def logit(self) -> float:
        return self.result.logit

    @property
    def sentences(self) -> Sequence[SentenceScore]:
        return self.result.sentences

    @property
    def kept_spans(self) -> list[Span]:
        return self.result.kept_spans

    @property
    def pruned_text(self) -> str:
        return self.result.pruned_text

    @property
    def compression(self) -> float:
        return self.result.compression

    @property
    def truncated(self) -> tuple[str, ...]:
        """What was cut to fit the model: ``"query"`` and/or ``"title"`` (never the text)."""
        return self.result.truncated

    def to_dict(self) -> dict[str, Any]:
        fused = {} if self.fused_score is None else {"fused_score": json_float(self.fused_score)}
        return {"score": self.score, **fused, **self.result.to_dict()}


@dataclass(frozen=True)
class RankedResults:
    """The documents of one query in rank order (best first; ties keep input order)."""

    query: Query
    documents: tuple[RankedDocument, ...]

    def __iter__(self) -> Iterator[RankedDocument]:
        return iter(self.documents)

    def __len__(self) -> int:
        return len(self.documents)

    def __contains__(self, doc_id: object) -> bool:
        return any(doc.doc_id == doc_id for doc in self.documents)

    @overload
    def __getitem__(self, key: int) -> RankedDocument: ...
    @overload
    def __getitem__(self, key: slice) -> RankedResults: ...
    @overload
    def __getitem__(self, key: str) -> RankedDocument: ...

    def __getitem__(self, key: int | slice | str) -> RankedDocument | RankedResults:
        """``results[i]``: the i-th best (0 is the best; negative counts from the end); ``results[a:b]``:
        those documents as ``RankedResults``; ``results["id"]``: the document with that id."""
        if isinstance(key, slice):
            return RankedResults(self.query, self.documents[key])
        if isinstance(key, int) and not isinstance(key, bool):
            return self.documents[key]
        if not isinstance(key, str):
            raise TypeError(f"index results by position (int), slice or string id, not {type(key).__name__}")
        matches = [doc for doc in self.documents if doc.doc_id == key]
        if not matches:
            raise KeyError(f"no document with id {key!r} in these results (it may have been cut by top_k)")
        if len(matches) > 1:
            raise KeyError(
                f"{len(matches)} documents share the id {key!r}; give them distinct ids, "
                "or find them by input position with [d for d in results if d.index == i]"
            )
        return matches[0]

    def top_k(self, k: int) -> RankedResults:
        """The ``k`` best documents."""
        if k < 1:
            raise ValueError(f"top_k({k}): k must be a positive number")
        return RankedResults(self.query, self.documents[:k])

    def above(self, min_score: float) -> RankedResults:
        """The documents whose ``score`` (calibrated probability) is at least ``min_score``."""
        return RankedResults(self.query, tuple(doc for doc in self.documents if doc.score >= min_score))

    def to_dict(self) -> dict[str, Any]:
        return {
            "query_id": self.query.id,
            "query": self.query.text,
            "results": [doc.to_dict() for doc in self.documents],
        }


def rank(
    pruner: Reranker,
    query: QueryLike,
    docs: Sequence[PassageLike],
    *,
    top_k: int | None = None,
    doc_ids: Sequence[str | int] | None = None,
    metadata: Sequence[Mapping[str, Any] | None] | None = None,
    truncate: bool = False,
    first_stage_scores: Sequence[float] | None = None,
    fusion: Fusion | str | None = None,
) -> RankedResults:
    """Rank ``docs`` for ``query`` best first, keeping the ``top_k`` best (all when ``None``).

    ``docs`` are strings (id = position), dicts with ``text`` (and ``id``, ``title``, ``metadata``)
    or ``Document``s. As in rerankers, string ``docs`` can take their ids and metadata from the
    parallel lists ``doc_ids`` and ``metadata`` (one entry per document). Pruning decisions (with the
    model's threshold) come with the same pass. A query over the model's ``max_query_tokens`` raises
    ``ValueError``, or with ``truncate=True`` is cut to its first tokens (each document's ``truncated``
    then holds ``"query"``).

    ``first_stage_scores`` (one per document, e.g. the retriever's BM25 or cosine scores) are fused with
    the model's logits by ``fusion`` (``"none"``, ``"interpolate[:alpha]"``, ``"rrf[:k]"`` or a
    ``ragprune.fusion.Fusion``; ``None``: ``DEFAULT_FUSION`` when scores are given, else none) and the
    fused score orders the list (``RankedDocument.fused_score``; ``score`` and ``logit`` stay the model's).
    A fusion other than ``"none"`` without ``first_stage_scores`` raises ``ValueError``.
    """
    return prune(
        pruner,
        query,
        docs,
        top_k=top_k,
        doc_ids=doc_ids,
        metadata=metadata,
        truncate=truncate,
        first_stage_scores=first_stage_scores,
        fusion=fusion,
    )


async def rank_async(
    pruner: Reranker,
    query: QueryLike,
    docs: Sequence[PassageLike],
    *,
    top_k: int | None = None,
    doc_ids: Sequence[str | int] | None = None,
    metadata: Sequence[Mapping[str, Any] | None] | None = None,
    truncate: bool = False,
    first_stage_scores: Sequence[float] | None = None,
    fusion: Fusion | str | None = None,
) -> RankedResults:
    """:func:`rank` run in a worker thread, so the calling event loop keeps serving meanwhile."""
    return await asyncio.to_thread(
        rank,
        pruner,
        query,
        docs,
        top_k=top_k,
        doc_ids=doc_ids,
        metadata=metadata,
        truncate=truncate,
        first_stage_scores=first_stage_scores,
        fusion=fusion,
    )


def prune(
    pruner: Reranker,
    query: QueryLike,
    docs: Sequence[PassageLike],
    *,
    threshold: float | None = None,
    top_k: int | None = None,
    doc_ids: Sequence[str | int] | None = None,
    metadata: Sequence[Mapping[str, Any] | None] | None = None,
    truncate: bool = False,
    first_stage_scores: Sequence[float] | None = None,
    fusion: Fusion | str | None = None,
    hops: int = 1,
) -> RankedResults:
    """Rank ``docs`` for ``query`` and prune each to the sentences whose keep score is above ``threshold``
    (``None``: the model's threshold). Every document comes back unless ``top_k`` cuts the list.
    ``doc_ids``, ``metadata``, ``truncate``, ``first_stage_scores`` and ``fusion`` as in :func:`rank`.
    ``hops=2``: multi-hop pruning (``RerankPruner.process``'s ``hops``; titles matter there); another
    backend raises ``ValueError``."""
    if isinstance(query, Sequence) and not isinstance(query, str):
        raise TypeError("rank/prune take one query; call pruner.process for a batch of queries")
    method = resolve_fusion(fusion, first_stage_scores is not None)
    docs = _with_ids_and_metadata(docs, doc_ids, metadata)
    options = _hop_options(pruner, hops)
    if not method.needs_first_stage:
        result = pruner.process(
            query, docs, threshold=threshold, top_k=top_k, reorder=True, truncate=truncate, **options
        )
        return RankedResults(result.query, tuple(RankedDocument(passage) for passage in result.passages))
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k}; use a positive number or None for all documents")
    if first_stage_scores is not None and len(first_stage_scores) != len(docs):
        raise ValueError(
            f"{len(first_stage_scores)} first_stage_scores for {len(docs)} docs; give one per document"
        )
    result = pruner.process(query, docs, threshold=threshold, reorder=False, truncate=truncate, **options)
    fused = method.fuse([result.ranking_score(passage) for passage in result.passages], first_stage_scores)
    order = best_first(fused)[:top_k]
    for rank, i in enumerate(order, start=1):
        result.passages[i].rank = rank
    return RankedResults(
        result.query, tuple(RankedDocument(result.passages[i], fused_score=fused[i]) for i in order)
    )


def predict(
    pruner: Reranker, pairs: Sequence[tuple[str, str]] | tuple[str, str], *, logits: bool = False
) -> np.ndarray | float:
    """One relevance score per ``(query, passage)`` pair, in input order (``CrossEncoder.predict``).

    Scores are calibrated probabilities (0..1; 0 for an empty passage) or, with ``logits=True``, the raw
    relevance logits (``-inf`` for an empty passage). A list of pairs gives a float numpy array of
    shape ``(len(pairs),)``; a single pair gives a float. Pairs are batched together in one call.
    """
    import numpy as np

    single = isinstance(pairs, tuple) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs)
    pair_list: list[tuple[str, str]] = (
        [cast("tuple[str, str]", pairs)] if single else list(cast("Sequence[tuple[str, str]]", pairs))
    )
    for i, pair in enumerate(pair_list):
        if not (isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2):
            raise TypeError(f"pair {i} is {pair!r}; pass (query, passage) pairs, e.g. [('q', 'a passage')]")
    results = pruner.process([query for query, _ in pair_list], [[passage] for _, passage in pair_list])
    scores = np.asarray(
        [result.passages[0].logit if logits else result.passages[0].probability for result in results],
        dtype=np.float64,
    )
    return float(scores[0]) if single else scores


def _hop_options(pruner: Reranker, hops: int) -> dict[str, int]:
    """``process``'s keyword for ``hops`` (none for one hop, which every backend does; ``process`` checks
    the value); ``ValueError`` for more hops on a backend whose ``process`` has no ``hops`` (multi-hop
    pruning: ``RerankPruner``)."""
    if hops == 1:
        return {}
    if "hops" not in inspect.signature(pruner.process).parameters:
        raise ValueError(f"hops=2 needs multi-hop pruning, which {type(pruner).__name__} does not offer")
    return {"hops": hops}


def _with_ids_and_metadata(
    docs: Sequence[PassageLike],
    doc_ids: Sequence[str | int] | None,
    metadata: Sequence[Mapping[str, Any] | None] | None,
) -> Sequence[PassageLike]:
    """String ``docs`` as ``Document``s with the ids and metadata of the parallel lists."""
    if doc_ids is None and metadata is None:
        return docs
    if isinstance(docs, str | Mapping | Document):
        raise TypeError("docs must be a list of documents, not a single one; wrap it in a list")
    for name, values in (("doc_ids", doc_ids), ("metadata", metadata)):
        if values is not None and len(values) != len(docs):
            raise ValueError(f"{name} has {len(values)} entries for {len(docs)} docs; give one per document")
    texts = [doc for doc in docs if isinstance(doc, str)]
    if len(texts) != len(docs):
        raise ValueError(
            "doc_ids/metadata go with documents given as strings; for dicts or Documents put the id and "
            "metadata inside each document"
        )
    return [
        Document(
            id=str(i if doc_ids is None or doc_ids[i] is None else doc_ids[i]),
            text=text,
            metadata=dict((metadata[i] if metadata is not None else None) or {}),
        )
        for i, text in enumerate(texts)
    ]
