"""Lazy exports of a package (PEP 562): names load their module on first use, so importing the package
stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``table`` maps each exported name to ``"module"`` (the name
    is an attribute of that module) or ``"module:attribute"`` (an alias). An unknown name raises
    ``AttributeError`` as Python's own lookup does."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = table[name].partition(":")
        return getattr(importlib.import_module(module), attribute or name)

    return __getattr__
