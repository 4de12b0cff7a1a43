"""The ranking API users know from cross-encoder rerankers: ``rank`` and ``prune`` one query's documents.

Results come back best first as ``RankedResults``: iterate them, cut them with ``.top_k(k)``, look a
document up by its id (``results["doc-3"]``). Each ``RankedDocument`` keeps the caller's document
(id, text, title, metadata) untouched and adds the score, the rank, the input position and what
pruning kept, as character spans into the original text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragprune.pipeline.inputs import PassageLike, QueryLike
from ragprune.pipeline.results import PassageResult, SentenceScore
from ragprune.types import Document, Query, Span

if TYPE_CHECKING:
    from ragprune.pipeline.process import RerankPruner


@dataclass(frozen=True)
class RankedDocument:
    """One document of a ranking: the caller's document plus its score and what pruning kept.

    ``score`` is the calibrated relevance probability (0..1, comparable across queries); ``logit`` the
    raw relevance logit (``-inf`` for an empty document). ``index`` is the position in the caller's list.
    """

    result: PassageResult

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
    def sentences(self) -> list[SentenceScore]:
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

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, **self.result.to_dict()}


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

    def __getitem__(self, doc_id: str) -> RankedDocument:
        """The document with this id. Positions are not ids: use ``.documents[i]`` for the i-th best."""
        if not isinstance(doc_id, str):
            raise TypeError(
                f"look documents up by their string id, not {type(doc_id).__name__}; "
                "use results.documents[i] for the i-th best"
            )
        matches = [doc for doc in self.documents if doc.doc_id == doc_id]
        if not matches:
            raise KeyError(f"no document with id {doc_id!r} in these results (it may have been cut by top_k)")
        if len(matches) > 1:
            raise KeyError(
                f"{len(matches)} documents share the id {doc_id!r}; give them distinct ids, "
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
    pruner: RerankPruner, query: QueryLike, docs: Sequence[PassageLike], *, top_k: int | None = None
) -> RankedResults:
    """Rank ``docs`` for ``query`` best first, keeping the ``top_k`` best (all when ``None``).

    ``docs`` are strings (id = position), dicts with ``text`` (and ``id``, ``title``, ``metadata``)
    or ``Document``s. Pruning decisions (with the model's threshold) come with the same pass.
    """
    return prune(pruner, query, docs, top_k=top_k)


def prune(
    pruner: RerankPruner,
    query: QueryLike,
    docs: Sequence[PassageLike],
    *,
    threshold: float | None = None,
    top_k: int | None = None,
) -> RankedResults:
    """Rank ``docs`` for ``query`` and prune each to the sentences whose keep score is above ``threshold``
    (``None``: the model's threshold). Every document comes back unless ``top_k`` cuts the list."""
    if isinstance(query, Sequence) and not isinstance(query, str):
        raise TypeError("rank/prune take one query; call pruner.process for a batch of queries")
    result = pruner.process(query, docs, threshold=threshold, top_k=top_k, reorder=True)
    return RankedResults(result.query, tuple(RankedDocument(passage) for passage in result.passages))
