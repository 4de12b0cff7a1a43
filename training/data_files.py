"""Reading and writing the gzip JSON-lines files of a training-data folder (``build_data.py``'s output).

Kept apart from the scripts so that the CPU-side ones (data building, teacher mixing, pseudo-queries)
share it without importing ``train.py`` and torch.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterable
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    """Every record of a gzip JSON-lines file."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def write_jsonl_gz(path: Path, records: Iterable[dict]) -> int:
    """Write ``records`` as gzip JSON lines (through a temporary file, so a killed run leaves no half
    file under the final name); returns how many were written."""
    tmp = path.with_suffix(".tmp")
    count = 0
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    tmp.rename(path)
    return count


def copy_data_files(source: Path, target: Path, rewritten: Iterable[str]) -> None:
    """Copy the data files of folder ``source`` into ``target``, except those named in ``rewritten``
    (the caller writes its own versions of them)."""
    target.mkdir(parents=True, exist_ok=True)
    skip = set(rewritten)
    for path in source.glob("*.jsonl.gz"):
        if path.name not in skip:
            shutil.copy(path, target / path.name)
