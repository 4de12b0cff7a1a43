"""Errors raised by the data readers.

Both subclass ``ValueError`` so the CLI reports them as one-line user errors; the message always names
the file (and line, where there is one), what was expected and how to fix it.
"""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A data file does not have the format its reader expects."""

    @classmethod
    def at(cls, path: str | Path, line: int | None, problem: str, fix: str) -> DataFormatError:
        """An error located at ``path:line`` (``line`` is 1-based; ``None`` for whole-file problems)."""
        where = f"{path}:{line}" if line is not None else str(path)
        return cls(f"{where}: {problem}; {fix}")


class DataMismatchError(ValueError):
    """Two data sources that should agree (e.g. a run and its qrels) do not."""


def missing_file(path: str | Path, what: str) -> FileNotFoundError:
    """A ``FileNotFoundError`` whose message names the path and what the file should hold."""
    return FileNotFoundError(f"{what} file not found: {path}; check the path (data root: $RAGPRUNE_DATA)")
