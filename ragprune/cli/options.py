"""Argument types and file handling shared by the sub-commands: checked numbers and ``-`` for stdin/stdout.

Output paths: ``-`` is standard output; otherwise the folder must exist. ragprune never creates a
missing output folder (a typo would otherwise scatter results silently): the error names the folder
and the ``mkdir -p`` that fixes it, before any model is loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

STDIO = "-"


def unit_interval(value: str) -> float:
    """An argparse type: a float in [0, 1] (thresholds on probabilities)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number; use a value between 0 and 1") from None
    # lazy: importing the pipeline package at parser construction would load numpy for every command
    from ragprune.pipeline.inputs import checked_threshold

    try:
        return checked_threshold(number)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_threshold_option(parser: argparse.ArgumentParser) -> None:
    """``--threshold``: the pruning threshold, a probability in [0, 1] (default: the model's own)."""
    parser.add_argument(
        "--threshold",
        type=unit_interval,
        default=None,
        help="pruning threshold in [0, 1] (default: the model's)",
    )


def positive_int(value: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a positive number")
    return number


def port_number(value: str) -> int:
    """An argparse type: a TCP port, 0-65535 (0: any free port)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number; use e.g. 8080") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number; use 1-65535, e.g. 8080")
    return number


def check_output(path: str, option: str) -> None:
    """Refuse an output path whose folder does not exist (``-`` is stdout and always fine)."""
    from ragprune.cli import UserError

    if path == STDIO:
        return
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{option} {path} is a folder; give a file name inside it, e.g. {target / 'out'}")
    folder = target.parent
    if not folder.is_dir():
        raise UserError(
            f"{option} {path}: the folder {folder} does not exist; create it first "
            f"(mkdir -p {folder}) or write elsewhere ('-' writes to standard output)"
        )


@contextlib.contextmanager
def open_output(path: str) -> Iterator[TextIO]:
    """A text handle for ``path`` (UTF-8), or standard output for ``-``."""
    if path == STDIO:
        yield sys.stdout
        sys.stdout.flush()
        return
    with open(path, "w", encoding="utf-8") as handle:
        yield handle


def json_line(record: object, encoding: str | None = "utf-8") -> str:
    """``record`` as one JSON line, non-ASCII text written as is where ``encoding`` can hold it; a string
    it cannot (e.g. a lone surrogate from a ``\\ud800`` escape in the input) falls back to ``\\u``
    escapes, so the line is still valid JSON and nothing is lost."""
    import json

    text = json.dumps(record, ensure_ascii=False)
    try:
        text.encode(encoding or "utf-8")
    except UnicodeEncodeError:
        text = json.dumps(record)
    return text + "\n"


def status_stream(output: str) -> TextIO:
    """Where a command's summary lines go: stdout, unless the results themselves go there."""
    return sys.stderr if output == STDIO else sys.stdout
