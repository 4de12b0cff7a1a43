"""The ``"local"`` engine: one worker process per local device, no Ray.

Workers are spawned (``torch.multiprocessing``'s ``spawn`` context: CUDA cannot be forked), each takes
one device from a queue, loads the model once and then rerank + prunes batches of whole queries. Batches
go out a few per worker at a time and come back in input order. A batch whose worker raised is sent
again; a worker that died breaks the pool, which is rebuilt, and the batches it had not returned are sent
again; either way at most ``max_retries`` times per batch, then :class:`WorkerFailedError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from ragprune.distributed.faults import FailOnce
from ragprune.distributed.tasks import QueryTask, RerankInput
from ragprune.distributed.work import PrunerSettings, QueryOutput, process_tasks

if TYPE_CHECKING:
    from ragprune.pipeline import RerankPruner

IN_FLIGHT_PER_WORKER = 2

_worker: tuple[RerankPruner, PrunerSettings, FailOnce | None] | None = None


class WorkerFailedError(RuntimeError):
    """A batch failed on more attempts than ``max_retries`` allows; the run stopped."""


def local_devices(device: str | None, workers: int | None) -> list[str]:
    """One device name per worker: ``cuda:0`` .. ``cuda:N-1`` on a machine with GPUs (``device`` None or
    ``"cuda"``; ``workers`` None: every GPU), or ``workers`` times ``"cpu"`` (default 2) for
    ``device="cpu"`` or a machine without GPUs. Raises ``ValueError`` for more GPU workers than GPUs or a
    single numbered device (use ``CUDA_VISIBLE_DEVICES`` to choose GPUs)."""
    import torch

    if workers is not None and workers < 1:
        raise ValueError(f"workers={workers}; use a positive number of worker processes")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device is not None and device not in ("cpu", "cuda"):
        raise ValueError(
            f"device={device!r}: the local engine uses 'cuda' (one worker per GPU) or 'cpu'; "
            "choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    if device == "cpu" or (device is None and gpus == 0):
        return ["cpu"] * (workers or 2)
    if gpus == 0:
        raise ValueError("device='cuda' but torch sees no CUDA GPU here; use device='cpu'")
    count = gpus if workers is None else workers
    if count > gpus:
        raise ValueError(
            f"workers={count} but this machine has {gpus} GPU(s): use at most {gpus} (one per GPU)"
        )
    return [f"cuda:{i}" for i in range(count)]


def run_local(
    source: RerankInput,
    settings: PrunerSettings,
    devices: Sequence[str],
    queries_per_batch: int,
    max_retries: int = 3,
    fault: FailOnce | None = None,
) -> Iterator[QueryOutput]:
    """Outputs of every task of ``source``, in input order, from one spawned worker per entry of
    ``devices``. CPU workers split the machine's cores between them (``settings.threads`` overrides)."""
    import os

    import torch.multiprocessing as mp

    if settings.threads is None and all(device == "cpu" for device in devices):
        from dataclasses import replace

        settings = replace(settings, threads=max(1, (os.cpu_count() or 1) // len(devices)))
    batches = list(source.batches(queries_per_batch))
    context = mp.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        queue = context.Queue()
        for device in devices:
            queue.put(device)
        return ProcessPoolExecutor(
            len(devices), mp_context=context, initializer=_init_worker, initargs=(queue, settings, fault)
        )

    window = IN_FLIGHT_PER_WORKER * len(devices)
    attempts = [0] * len(batches)
    futures: dict[int, Future[list[QueryOutput]]] = {}
    pool = new_pool()
    try:
        submitted = 0
        for index in range(len(batches)):
            while submitted < len(batches) and len(futures) < window:
                futures[submitted] = pool.submit(_run_batch, batches[submitted])
                submitted += 1
            while True:
                try:
                    outputs = futures[index].result()
                    break
                except BrokenProcessPool as error:
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = new_pool()
                    for i, future in sorted(futures.items()):  # all done now: results, errors or cancelled
                        if future.cancelled() or future.exception() is not None:
                            if not future.cancelled():  # it was running or queued when a worker died
                                _count_attempt(attempts, i, max_retries, batches[i], error)
                            futures[i] = pool.submit(_run_batch, batches[i])
                except Exception as error:  # the worker raised: send the batch again
                    _count_attempt(attempts, index, max_retries, batches[index], error)
                    futures[index] = pool.submit(_run_batch, batches[index])
            del futures[index]
            yield from outputs
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _count_attempt(
    attempts: list[int], index: int, max_retries: int, batch: Sequence[QueryTask], error: BaseException
) -> None:
    attempts[index] += 1
    if attempts[index] > max_retries:
        qids = [task.qid for task in batch]
        raise WorkerFailedError(
            f"the batch of queries {qids[:5]}{'...' if len(qids) > 5 else ''} failed {attempts[index]} times "
            f"(max_retries={max_retries}); last error: {error!r}"
        ) from error


def _init_worker(queue: Any, settings: PrunerSettings, fault: FailOnce | None) -> None:
    global _worker
    device = queue.get()
    _worker = (settings.load(device), settings, fault)


def _run_batch(batch: Sequence[QueryTask]) -> list[QueryOutput]:
    assert _worker is not None, "worker not initialised"
    pruner, settings, fault = _worker
    if fault is not None:
        fault.maybe_fail(task.qid for task in batch)
    return process_tasks(pruner, batch, settings)
