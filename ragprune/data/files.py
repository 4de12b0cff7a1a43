"""Reading text data files line by line, with errors that name the file."""

from __future__ import annotations

import gzip
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragprune.data.errors import DataFormatError, missing_file


def open_binary(path: str | Path, what: str) -> io.BufferedIOBase:
    """Open a data file for reading bytes, gunzipping ``*.gz`` transparently.

    ``what`` names the kind of file (e.g. ``"qrels"``) for the error when it does not exist. The path
    ``-`` is standard input, read whole (the commands that accept it hold every record anyway).
    """
    if str(path) == "-":
        return io.BytesIO(sys.stdin.buffer.read())
    path = Path(path)
    if not path.is_file():
        raise missing_file(path, what)
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def numbered_lines(path: str | Path, what: str) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a UTF-8 text file as ``(1-based line number, line without its line ending)``.

    Lines are decoded one at a time so an encoding error names its exact line; a leading BOM is dropped.
    """
    try:
        with open_binary(path, what) as handle:
            for lineno, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8").rstrip("\r\n")
                except UnicodeDecodeError as error:
                    raise DataFormatError.at(
                        path, lineno, f"not UTF-8 text ({error.reason})", "re-encode the file as UTF-8"
                    ) from None
                if line.strip():
                    yield lineno, line
    except (gzip.BadGzipFile, EOFError) as error:
        raise DataFormatError.at(
            path, None, f"not a valid gzip file ({error})", "re-compress it or drop the .gz suffix"
        ) from None


def preview(line: str, limit: int = 60) -> str:
    """A short quoted excerpt of a line for error messages."""
    return repr(line if len(line) <= limit else line[:limit] + "...")


def split_columns(
    line: str, columns: str, path: str | Path, lineno: int, fix: str, separator: str | None = None
) -> list[str]:
    """``line`` split on ``separator`` (``None``: any whitespace) into exactly the space-separated names
    in ``columns``; any other count is a :class:`DataFormatError` naming the columns, with ``fix``."""
    fields = line.split(separator)
    expected = len(columns.split())
    if len(fields) != expected:
        kind = "tab-separated columns" if separator == "\t" else "columns"
        raise DataFormatError.at(
            path, lineno, f"expected {expected} {kind} '{columns}', got {len(fields)}: {preview(line)}", fix
        )
    return fields


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
