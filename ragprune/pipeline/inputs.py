"""Normalise what callers pass (strings, dicts, ``Document``s) into ragprune's types, with clear errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ragprune.types import Document, Query

PassageLike = str | Document | Mapping[str, Any]
QueryLike = str | Query


def as_query(query: QueryLike, position: int = 0) -> Query:
    """A ``Query``; a plain string gets its position as id. Empty queries are refused."""
    if isinstance(query, Query):
        result = query
    elif isinstance(query, str):
        result = Query(id=str(position), text=query)
    else:
        raise TypeError(f"query {position} is a {type(query).__name__}; pass a str or ragprune.Query")
    if not result.text.strip():
        raise ValueError(
            f"query {result.id!r} is empty; pass the question text "
            "(an empty query cannot rank or prune anything)"
        )
    return result


def as_document(passage: PassageLike, position: int) -> Document:
    """A ``Document``; strings get their position as id, mappings need a ``text`` field."""
    if isinstance(passage, Document):
        return passage
    if isinstance(passage, str):
        return Document(id=str(position), text=passage)
    if isinstance(passage, Mapping):
        if not isinstance(passage.get("text"), str):
            raise ValueError(f"passage {position} has no string 'text' field; got keys {sorted(passage)}")
        known = {"id", "text", "title", "metadata"}
        metadata = dict(passage.get("metadata") or {})
        metadata.update({k: v for k, v in passage.items() if k not in known})
        return Document(
            id=str(passage.get("id", position)),
            text=passage["text"],
            title=str(passage.get("title") or ""),
            metadata=metadata,
        )
    raise TypeError(
        f"passage {position} is a {type(passage).__name__}; pass a str, dict or ragprune.Document"
    )


def as_documents(passages: Sequence[PassageLike]) -> list[Document]:
    if isinstance(passages, str | Mapping | Document):
        raise TypeError("passages must be a list of passages, not a single passage; wrap it in a list")
    return [as_document(passage, i) for i, passage in enumerate(passages)]
