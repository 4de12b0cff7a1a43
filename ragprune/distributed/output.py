"""Writing the engines' per-query outputs as a TREC run and pruned JSONL, and the end-of-run check that
every input pair came back exactly once."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

from ragprune.distributed.tasks import RerankInput
from ragprune.distributed.work import QueryOutput

STDOUT = "-"


class IncompleteOutputError(RuntimeError):
    """An engine returned a query twice, missed one, or lost or added documents of one. The message names
    the query ids; the output files are incomplete and must not be used."""


class OutputWriter:
    """Writes outputs as they arrive (``run_path``: TREC run; ``pruned_path``: JSONL, optional; ``"-"``:
    standard output) and counts what it wrote for :meth:`check`. ``collect_run`` keeps the run in memory
    (``run``: qid -> doc id -> score) for measures."""

    def __init__(
        self, run_path: str | Path, pruned_path: str | Path | None, tag: str, collect_run: bool = False
    ) -> None:
        from ragprune.data import format_run

        format_run({}, tag=tag)  # a bad tag fails before any work
        if str(run_path) == STDOUT and pruned_path is not None and str(pruned_path) == STDOUT:
            raise ValueError("the run and the pruned output cannot both go to standard output ('-')")
        self.tag = tag
        self.seen: Counter[str] = Counter()
        self.documents: dict[str, set[str]] = {}
        self.pairs = 0
        self.compression = 0.0
        self.run: dict[str, dict[str, float]] | None = {} if collect_run else None
        self._run = _open(run_path)
        self._pruned = _open(pruned_path) if pruned_path is not None else None

    def write(self, output: QueryOutput) -> None:
        """Append one query's run lines and pruned line."""
        self.seen[output.qid] += 1
        self.documents.setdefault(output.qid, set()).update(doc_id for doc_id, _ in output.run)
        self.pairs += output.pairs
        self.compression += output.compression
        lines = []
        for rank, (doc_id, score) in enumerate(output.run, start=1):
            if not math.isfinite(score):
                raise ValueError(f"score {score!r} of query {output.qid!r}, doc {doc_id!r} is not finite")
            lines.append(f"{output.qid} Q0 {doc_id} {rank} {score!r} {self.tag}\n")
        self._run.write("".join(lines))
        if self._pruned is not None:
            self._pruned.write(_encodable(output.pruned, self._pruned.encoding) + "\n")
        if self.run is not None:
            self.run[output.qid] = dict(output.run)

    def close(self) -> None:
        for handle in (self._run, self._pruned):
            if handle is None:
                continue
            if handle is sys.stdout:
                handle.flush()
            else:
                handle.close()

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def mean_compression(self) -> float:
        """Mean share of the scored passages' text that pruning removed."""
        return self.compression / max(1, self.pairs)

    def check(self, source: RerankInput) -> None:
        """Raise :class:`IncompleteOutputError` unless every task came back once with exactly its
        documents."""
        check_complete(source, self.seen, self.documents)


def check_complete(source: RerankInput, seen: Counter[str], documents: dict[str, set[str]]) -> None:
    """See :meth:`OutputWriter.check`: ``seen`` counts outputs per qid, ``documents`` their doc ids."""
    expected = {task.qid: task for task in source.tasks}
    missing = sorted(qid for qid in expected if seen[qid] == 0)
    duplicated = sorted(qid for qid, n in seen.items() if n > 1)
    unexpected = sorted(qid for qid in seen if qid not in expected)
    mismatched = sorted(
        qid for qid, task in expected.items() if seen[qid] == 1 and documents[qid] != set(task.run)
    )
    problems = [
        f"{name} {len(qids)} (e.g. {qids[:5]})"
        for name, qids in (
            ("missing queries:", missing),
            ("duplicated queries:", duplicated),
            ("queries not in the input:", unexpected),
            ("queries with lost or extra documents:", mismatched),
        )
        if qids
    ]
    if problems:
        raise IncompleteOutputError(
            f"the output is incomplete ({'; '.join(problems)}) out of {len(expected)} input queries; "
            "do not use these files: rerun (a worker may have failed beyond its retries; raise max_retries)"
        )


def _open(path: str | Path) -> TextIO:
    if str(path) == STDOUT:
        return sys.stdout
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(
            f"output {target}: the folder {target.parent} does not exist; create it first (mkdir -p)"
        )
    return open(target, "w", encoding="utf-8")


def _encodable(line: str, encoding: str | None) -> str:
    """``line`` as is if ``encoding`` holds it, else re-written with ``\\u`` escapes (still the same JSON)."""
    try:
        line.encode(encoding or "utf-8")
    except UnicodeEncodeError:
        return json.dumps(json.loads(line))
    return line
