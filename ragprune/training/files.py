"""The files of a training-data folder (``training/build_data.py``'s output): gzip JSON lines, copied and
rewritten by the scripts that derive one folder from another.

Light on purpose (no torch): the CPU-side scripts (data building, teacher mixing, pseudo-queries) use it.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

POOL = "pool.jsonl.gz"
"""Passages: ``pid``, ``text``, ``sentences`` (character spans), ``source``, ``ids``."""
GROUPS = "groups.jsonl.gz"
"""Training queries: ``qid``, ``query``, ``source``, ``candidates`` (teacher scores, labels), ``gold``."""
VALID_PRUNING = "valid_pruning.jsonl.gz"
"""Gold-labelled training questions held out for calibration and the default threshold."""
VALID_DL21 = "valid_dl21.jsonl.gz"
"""DL21 judged queries with their BM25 top-100 (``docno``, graded ``label``): ranking validation."""
SENTENCES = "sentences.jsonl.gz"
"""Per-sentence teacher cosines (``qid``, ``pid``, ``cos``) behind the silver labels."""
SPLICED = "spliced.jsonl.gz"
"""``training/build_spliced.py``'s synthetic passages from the training groups."""
VALID_SPLICED = "valid_spliced.jsonl.gz"
"""``training/build_spliced.py``'s synthetic passages from the held-out questions."""


def read_jsonl(path: Path) -> list[dict]:
    """Every record of a gzip JSON-lines file (``FileNotFoundError`` if it is missing)."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def write_jsonl_gz(path: Path, records: Iterable[dict]) -> int:
    """Write ``records`` as gzip JSON lines through a temporary file (a killed run leaves no half file
    under the final name); returns how many were written."""
    tmp = path.with_suffix(".tmp")
    count = 0
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    tmp.rename(path)
    return count


def copy_data_files(source: Path, target: Path, rewritten: Iterable[str]) -> None:
    """Copy the ``*.jsonl.gz`` files of folder ``source`` into ``target`` (created if needed), except
    those named in ``rewritten`` (the caller writes its own versions of them)."""
    target.mkdir(parents=True, exist_ok=True)
    skip = set(rewritten)
    for path in source.glob("*.jsonl.gz"):
        if path.name not in skip:
            shutil.copy(path, target / path.name)


def r3(x: float) -> float:
    """A score as written to the data files: 3 decimals (1e-3 is ~1% of a query's cosine spread, and the
    files stay small enough to travel to the GPU with the model)."""
    return round(float(x), 3)
