"""Heads of the shared encoder, built from the model config: one file per head type.

``build_head`` resolves a config entry's ``type``: a built-in name (``"rank"``, ``"token"``, ``"listwise"``)
or an import path ``"package.module:ClassName"`` of a :class:`Head` subclass, so a new head needs no edit
here.
"""

from __future__ import annotations

import importlib

from ragprune.models.heads.base import Head, Reads
from ragprune.models.heads.listwise import ListwiseHead
from ragprune.models.heads.rank import RankHead
from ragprune.models.heads.token import TokenHead

BUILTIN_HEADS: dict[str, type[Head]] = {"rank": RankHead, "token": TokenHead, "listwise": ListwiseHead}


def head_class(type_name: str) -> type[Head]:
    """The :class:`Head` subclass a config entry's ``type`` names; ``ValueError`` if there is none."""
    if type_name in BUILTIN_HEADS:
        return BUILTIN_HEADS[type_name]
    module_name, _, class_name = type_name.partition(":")
    if not class_name:
        raise ValueError(
            f"unknown head type {type_name!r}; use one of {sorted(BUILTIN_HEADS)} "
            "or 'package.module:ClassName'"
        )
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"head type {type_name!r} cannot be imported ({error}); check the module path"
        ) from error
    if not (isinstance(found, type) and issubclass(found, Head)):
        raise ValueError(f"head type {type_name!r} is not a subclass of ragprune.models.heads.Head")
    return found


def build_head(type_name: str, hidden_size: int, options: dict) -> Head:
    """``head_class(type_name)(hidden_size, **options)``; bad options raise ``ValueError`` naming the head."""
    cls = head_class(type_name)
    try:
        return cls(hidden_size, **options)
    except TypeError as error:
        raise ValueError(
            f"head type {type_name!r} does not take options {sorted(options)}: {error}"
        ) from error


__all__ = [
    "BUILTIN_HEADS",
    "Head",
    "ListwiseHead",
    "RankHead",
    "Reads",
    "TokenHead",
    "build_head",
    "head_class",
]
