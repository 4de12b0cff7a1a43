"""Reading text data files line by line, with errors that name the file."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ragprune.data.errors import DataFormatError, missing_file


def open_text(path: str | Path, what: str) -> IO[str]:
    """Open a UTF-8 text file for reading, gunzipping ``*.gz`` transparently.

    ``what`` names the kind of file (e.g. ``"qrels"``) for the error when it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_file(path, what)
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return path.open(encoding="utf-8", newline="\n")


def numbered_lines(path: str | Path, what: str) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a text file as ``(1-based line number, line without its line ending)``."""
    lineno = 0
    try:
        with open_text(path, what) as handle:
            for lineno, raw in enumerate(handle, start=1):
                line = raw.rstrip("\r\n")
                if line.strip():
                    yield lineno, line
    except UnicodeDecodeError as error:
        raise DataFormatError.at(
            path, lineno + 1, f"not UTF-8 text ({error.reason})", "re-encode the file as UTF-8"
        ) from None
    except (gzip.BadGzipFile, EOFError) as error:
        raise DataFormatError.at(
            path, None, f"not a valid gzip file ({error})", "re-compress it or drop the .gz suffix"
        ) from None


def preview(line: str, limit: int = 60) -> str:
    """A short quoted excerpt of a line for error messages."""
    return repr(line if len(line) <= limit else line[:limit] + "...")


def numbered_json_objects(path: str | Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The JSON objects of a JSON-lines file as ``(1-based line number, object)``."""
    for lineno, line in numbered_lines(path, what):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError.at(
                path,
                lineno,
                f"not valid JSON ({error.msg}, column {error.colno})",
                "write one JSON object per line",
            ) from None
        if not isinstance(record, dict):
            raise DataFormatError.at(
                path,
                lineno,
                f"expected a JSON object, got {type(record).__name__}",
                "write one JSON object per line",
            )
        yield lineno, record


def field_of(
    record: dict[str, Any], key: str, kind: type, path: str | Path, lineno: int, default: Any = None
) -> Any:
    """``record[key]``, checked to be of type ``kind``; ``default`` when absent (required if ``None``)."""
    if key not in record:
        if default is not None:
            return default
        raise DataFormatError.at(path, lineno, f"missing field {key!r}", f"add {key!r} to every record")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataFormatError.at(
            path,
            lineno,
            f"field {key!r} must be {kind.__name__}, got {type(value).__name__}",
            f"write {key!r} as a JSON {_JSON_NAMES.get(kind, kind.__name__)}",
        )
    return value


_JSON_NAMES = {str: "string", list: "array", int: "integer", dict: "object"}
