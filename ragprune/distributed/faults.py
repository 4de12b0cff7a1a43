"""Fault injection for drills and tests of the engines' retry settings: make one worker fail once, on the
batch that holds a chosen query, and check that the run still writes every pair exactly once."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HOW = ("raise", "exit")
EXIT_STATUS = 75  # what a worker killed by an "exit" fault exits with


class InjectedFailure(RuntimeError):
    """The error a ``FailOnce(how="raise")`` fault raises inside a worker."""


@dataclass(frozen=True)
class FailOnce:
    """Fail the first batch holding query ``qid`` that any worker starts, once per run.

    ``flag``: a file path every worker can reach (a shared or local disk) that must not exist yet; the
    first worker to create it fails, so a retried batch goes through. ``how``: ``"raise"`` raises
    :class:`InjectedFailure` (an application error, retried as one) or ``"exit"`` ends the worker's
    process at once (status ``EXIT_STATUS``; a crashed worker, restarted and its batch retried).
    """

    flag: str
    qid: str
    how: str = "raise"

    def __post_init__(self) -> None:
        if self.how not in HOW:
            raise ValueError(f"FailOnce(how={self.how!r}); use one of {HOW}")
        if Path(self.flag).exists():
            raise ValueError(f"FailOnce flag {self.flag} exists already; remove it or choose a new path")

    def maybe_fail(self, qids: Iterable[str]) -> None:
        """Fail if ``qids`` holds the chosen query and no worker has failed for it yet."""
        if self.qid not in set(qids):
            return
        try:
            os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        if self.how == "exit":
            os._exit(EXIT_STATUS)
        raise InjectedFailure(f"injected failure on the batch holding query {self.qid!r} (flag {self.flag})")
