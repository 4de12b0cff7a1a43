"""Where tests find the shared data folder ($RAGPRUNE_DATA), and the mark for tests that need it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragprune.data import data_root


def dataset_dir(*parts: str) -> Path | None:
    """``<data root>/<parts...>`` when that folder exists, else ``None`` (no data root, or no such set)."""
    try:
        folder = data_root().joinpath(*parts)
    except (FileNotFoundError, ValueError):
        return None
    return folder if folder.is_dir() else None


needs_data = pytest.mark.skipif(
    dataset_dir("trec-dl", "dl19") is None, reason="needs the shared data folder ($RAGPRUNE_DATA)"
)
