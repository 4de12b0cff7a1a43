"""Where the shared data lives.

Large data sets are not part of the repository; they live in a data root that defaults to
``../shared/data`` and can be moved with the ``RAGPRUNE_DATA`` environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "RAGPRUNE_DATA"
_DEFAULT_RELATIVE = Path("..") / "shared" / "data"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """The data root: ``$RAGPRUNE_DATA``, else ``../shared/data`` from the current directory, else from
    the repository root (so scripts work from any directory inside a checkout)."""
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        root = Path(from_env).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"${ENV_VAR} points to {root}, which is not a directory; fix or unset it")
        return root
    candidates = [Path.cwd() / _DEFAULT_RELATIVE, _REPO_ROOT / _DEFAULT_RELATIVE]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    tried = ", ".join(str(c.resolve()) for c in candidates)
    raise FileNotFoundError(f"no data root found (tried {tried}); set ${ENV_VAR} to the data directory")


def resolve_dataset_dir(name_or_path: str | Path, collection: str) -> Path:
    """A data set directory: ``name_or_path`` itself if it is a directory, else
    ``data_root()/collection/name_or_path`` (so ``"dl19"`` finds ``trec-dl/dl19``)."""
    direct = Path(name_or_path).expanduser()
    if direct.is_dir():
        return direct
    if direct.is_absolute() or len(direct.parts) != 1:
        raise FileNotFoundError(f"data set directory not found: {direct}")
    parent = data_root() / collection
    candidate = parent / direct
    if candidate.is_dir():
        return candidate
    available = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
    listing = ", ".join(available) if available else "none"
    raise FileNotFoundError(
        f"unknown {collection} data set {str(name_or_path)!r}: no directory {candidate} "
        f"(available: {listing})"
    )
