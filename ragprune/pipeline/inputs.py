"""Normalise what callers pass (strings, dicts, ``Document``s) into ragprune's types, with clear errors.

The types keep the caller's text as given; every text field is checked here with
``ragprune.normalize.check_text`` (lone surrogates refused under ``invalid_text="error"``), and a query
without a visible character is refused. The pipeline reads the repaired text (``repair_text``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from ragprune.normalize import check_text, is_blank
from ragprune.types import Document, Query

PassageLike = str | Document | Mapping[str, Any]
QueryLike = str | Query


def checked_threshold(threshold: float) -> float:
    """``threshold`` itself if it is a probability in [0, 1]; ``ValueError`` naming the fix otherwise
    (NaN included: it would keep nothing)."""
    if not 0.0 <= threshold <= 1.0:  # also refuses nan
        raise ValueError(
            f"threshold {threshold} is outside [0, 1]; thresholds are probabilities, "
            "e.g. 0.1 (keep more) or 0.5"
        )
    return float(threshold)


def as_query(query: QueryLike, position: int = 0, invalid_text: str = "replace") -> Query:
    """A ``Query``; a plain string gets its position as id.

    Raises ``ValueError`` for a query without a visible character (empty, whitespace, zero-width or other
    format characters only) and, under ``invalid_text="error"``, for one holding a lone surrogate.
    """
    if isinstance(query, Query):
        result = query
    elif isinstance(query, str):
        result = Query(id=str(position), text=query)
    else:
        raise TypeError(f"query {position} is a {type(query).__name__}; pass a str or ragprune.Query")
    check_text(result.text, f"query {result.id!r}", invalid_text)
    if is_blank(result.text):
        raise ValueError(
            f"query {result.id!r} is empty; pass the question text "
            "(it has no visible character, and an empty query cannot rank or prune anything)"
        )
    return result


def as_document(
    passage: PassageLike, position: int, invalid_text: str = "replace", label: str = "passages"
) -> Document:
    """A ``Document``; strings get their position as id, mappings need a ``text`` field.

    ``label`` names the list in errors (``passages[3].text``). Under ``invalid_text="error"`` a text or
    title holding a lone surrogate raises ``ValueError``.
    """
    if isinstance(passage, Document):
        document = passage
    elif isinstance(passage, str):
        document = Document(id=str(position), text=passage)
    elif isinstance(passage, Mapping):
        if not isinstance(passage.get("text"), str):
            raise ValueError(f"passage {position} has no string 'text' field; got keys {sorted(passage)}")
        known = {"id", "text", "title", "metadata"}
        metadata = dict(passage.get("metadata") or {})
        metadata.update({k: v for k, v in passage.items() if k not in known})
        document = Document(
            id=_id(passage.get("id"), position),
            text=passage["text"],
            title=str(passage.get("title") or ""),
            metadata=metadata,
        )
    else:
        raise TypeError(
            f"passage {position} is a {type(passage).__name__}; pass a str, dict or ragprune.Document"
        )
    check_text(document.text, f"{label}[{position}].text", invalid_text)
    check_text(document.title, f"{label}[{position}].title", invalid_text)
    return document


def _id(value: Any, position: int) -> str:
    """A passage id as a string: a missing or ``None`` id is the passage's position."""
    if value is None:
        return str(position)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(
            f"passage {position}: 'id' must be a string or an integer, got {type(value).__name__} "
            f"({value!r}); pass a string id, or leave it out to use the position"
        )
    return str(value)


def as_documents(
    passages: Sequence[PassageLike], invalid_text: str = "replace", label: str = "passages"
) -> list[Document]:
    if isinstance(passages, str | Mapping | Document):
        raise TypeError("passages must be a list of passages, not a single passage; wrap it in a list")
    return [as_document(passage, i, invalid_text, label) for i, passage in enumerate(passages)]


def parse_call(
    queries: QueryLike | Sequence[QueryLike],
    passages: Sequence[PassageLike] | Sequence[Sequence[PassageLike]],
    top_k: int | None,
    invalid_text: str = "replace",
) -> tuple[bool, list[Query], list[list[Document]]]:
    """The inputs of a ``process`` call: whether it was one query, the queries and one document list each.

    One query (str or ``Query``) goes with one passage list; a list of queries with one list per query.
    ``ValueError`` when the counts differ or ``top_k`` is not positive (or ``None``), and for bad queries
    and passages (see :func:`as_query`, :func:`as_documents`).
    """
    single = isinstance(queries, str | Query)
    query_list: list[QueryLike]
    passage_lists: list[Sequence[PassageLike]]
    if isinstance(queries, str | Query):
        query_list, passage_lists = [queries], [cast("Sequence[PassageLike]", passages)]
    else:
        query_list, passage_lists = list(queries), list(cast("Sequence[Sequence[PassageLike]]", passages))
    if len(query_list) != len(passage_lists):
        raise ValueError(
            f"got {len(query_list)} queries but {len(passage_lists)} passage lists; pass one list per query"
        )
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k}; use a positive number or None for all passages")
    parsed = [as_query(query, i, invalid_text) for i, query in enumerate(query_list)]
    documents = [
        as_documents(plist, invalid_text, "passages" if single else f"passages[{i}]")
        for i, plist in enumerate(passage_lists)
    ]
    return single, parsed, documents
