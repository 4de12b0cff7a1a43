"""CPU preparation of encoder rows in worker processes, so a GPU is not kept waiting on Python.

Tokenizing (the Rust tokenizer's batch call), sentence splitting (Python regular expressions) and row
building cost a few tenths of a millisecond per pair in one thread: on a GPU that scores tens of
thousands of pairs a second, that would be the bottleneck. Large jobs are cut into shards that forked
workers prepare in parallel and hand back in order as each is done, as flat arrays
(``PreparedShard``: a few buffers to unpickle, not an object per pair), so the caller can run the encoder
on early shards while later ones are still being prepared. Small jobs and CPU-only inference (where the
encoder already uses every core) stay in the calling process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Generator
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from transformers import PreTrainedTokenizerBase

from ragprune.pipeline.encoding import PairTemplate
from ragprune.pipeline.prepared import PreparedShard, prepare_shard

SHARD_PAIRS = 256  # pairs per task: large enough to amortise pickling, small enough to start the GPU early
MAX_WORKERS = 32

_worker_state: tuple[PreTrainedTokenizerBase, PairTemplate, int] | None = None


def default_workers(device_type: str) -> int:
    """Worker processes for a device: none on CPU, up to ``MAX_WORKERS`` spare cores next to a GPU."""
    if device_type == "cpu":
        return 0
    return max(0, min(MAX_WORKERS, (os.cpu_count() or 1) - 1))


class RowPreparer:
    """Prepares pairs in the calling process, or in a pool of forked workers for large jobs."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, template: PairTemplate, max_length: int, workers: int
    ) -> None:
        self.tokenizer = tokenizer
        self.template = template
        self.max_length = max_length
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def shards(
        self, query_ids: list[np.ndarray], texts: list[str], titles: list[str]
    ) -> Generator[PreparedShard, None, None]:
        """The prepared pairs, in input order, in consecutive shards yielded as soon as each is ready."""
        if self.workers < 2 or len(texts) < 2 * SHARD_PAIRS:
            yield prepare_shard(self.tokenizer, self.template, self.max_length, query_ids, texts, titles)
            return
        shards = [
            (query_ids[i : i + SHARD_PAIRS], texts[i : i + SHARD_PAIRS], titles[i : i + SHARD_PAIRS])
            for i in range(0, len(texts), SHARD_PAIRS)
        ]
        yield from self._executor().map(_prepare_shard, shards)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # fork: workers inherit the tokenizer instead of unpickling it; they never touch CUDA
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_init_worker,
                initargs=(self.tokenizer, self.template, self.max_length),
            )
        return self._pool


def _init_worker(tokenizer: PreTrainedTokenizerBase, template: PairTemplate, max_length: int) -> None:
    global _worker_state
    # one tokenizer thread per worker process: the workers are the parallelism (and Rust threads do not
    # survive a fork)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _worker_state = (tokenizer, template, max_length)


def _prepare_shard(shard: tuple[list[np.ndarray], list[str], list[str]]) -> PreparedShard:
    if _worker_state is None:
        raise RuntimeError("_prepare_shard runs in a pool worker started with _init_worker")
    tokenizer, template, max_length = _worker_state
    return prepare_shard(tokenizer, template, max_length, *shard)
