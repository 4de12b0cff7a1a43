"""The ``"ray"`` engine: Ray Data ``map_batches`` over whole queries with a model-holding actor class.

One row of the dataset is one query with all of its candidates (a JSON payload), so a batch of
``queries_per_batch`` rows never splits a query. One actor per GPU (``num_gpus=1``) when the cluster has
GPUs, else CPU actors (``num_cpus=1``, torch threads = the cluster's CPUs / actors). Each actor loads the
model once (:meth:`PrunerSettings.load`, i.e. ``RerankPruner.load``) in its constructor.

Fault tolerance: actors are created with ``max_restarts`` and their tasks with ``max_task_retries`` (both
``max_retries``), so a crashed actor is restarted and its batch sent again; application errors raised in a
batch are retried too (``DataContext.actor_task_retry_on_errors``). Results come back in input order
(``preserve_order``), so the output files are in query-id order like the inline run's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from ragprune.distributed.faults import FailOnce
from ragprune.distributed.tasks import QueryTask, RerankInput
from ragprune.distributed.work import PrunerSettings, QueryOutput, process_tasks

OUTPUT_COLUMNS = ("qid", "run", "pruned", "pairs", "compression")


class RayRerankPruneWorker:
    """The callable class ``map_batches`` runs on every actor: loads the model once, then turns a batch of
    payload rows (``{"qid", "payload"}``, one query each) into output rows (``OUTPUT_COLUMNS``, one query
    each, see :meth:`QueryOutput.to_row`)."""

    def __init__(self, settings: PrunerSettings, fault: FailOnce | None = None) -> None:
        import ray

        device = settings.device or ("cuda" if ray.get_gpu_ids() else "cpu")
        self.settings = settings
        self.fault = fault
        self.pruner = settings.load(device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tasks = [QueryTask.from_payload(str(payload)) for payload in batch["payload"]]
        if self.fault is not None:
            self.fault.maybe_fail(task.qid for task in tasks)
        rows = [output.to_row() for output in process_tasks(self.pruner, tasks, self.settings)]
        return {name: np.array([row[name] for row in rows], dtype=object) for name in OUTPUT_COLUMNS}


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or an ``ImportError`` that says what to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError(
            "engine='ray' needs Ray Data: pip install 'ragprune[distributed]' (or use engine='local')"
        ) from None
    return ray


def run_ray(
    source: RerankInput,
    settings: PrunerSettings,
    workers: int | None,
    queries_per_batch: int,
    max_retries: int = 3,
    fault: FailOnce | None = None,
    address: str | None = None,
    progress: bool = False,
) -> tuple[Iterator[QueryOutput], int]:
    """The outputs of every task of ``source`` (an iterator, in input order, from Ray Data actors) and
    the number of actors.

    Joins the running Ray instance, or starts one with ``ray.init(address=address)`` (``None``: a local
    one; ``"auto"``: the cluster this machine belongs to) and shuts it down when the iterator ends.
    ``workers``: actors (``None``: one per GPU of the cluster, or one CPU actor without GPUs). Raises
    ``ValueError`` when the cluster cannot hold them or ``settings.device`` is not ``None``, ``"cuda"``
    or ``"cpu"``.
    """
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        import logging

        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    try:
        settings, options = _placement(settings, workers, ray.cluster_resources())
    except BaseException:
        if started:
            ray.shutdown()
        raise
    stream = _stream(ray, started, source, settings, options, queries_per_batch, max_retries, fault, progress)
    return stream, int(options["concurrency"])


def _stream(ray: Any, started: bool, *args: Any) -> Iterator[QueryOutput]:
    try:
        yield from _run_dataset(ray, *args)
    finally:
        if started:
            ray.shutdown()


def _placement(
    settings: PrunerSettings, workers: int | None, resources: dict[str, float]
) -> tuple[PrunerSettings, dict[str, Any]]:
    """The worker settings and ``map_batches`` resource options for this cluster."""
    if settings.device not in (None, "cpu", "cuda"):
        raise ValueError(
            f"device={settings.device!r}: with engine='ray' use 'cuda' (Ray gives a worker one GPU), 'cpu' "
            "or None (GPUs when the cluster has them)"
        )
    if workers is not None and workers < 1:
        raise ValueError(f"workers={workers}; use a positive number of Ray workers")
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if settings.device == "cuda" and gpus == 0:
        raise ValueError("device='cuda' but the Ray cluster has no GPU; use device='cpu' or None")
    if settings.device != "cpu" and gpus > 0:
        count = gpus if workers is None else workers
        if count > gpus:
            raise ValueError(
                f"workers={count} but the Ray cluster has {gpus} GPU(s): one worker per GPU at most"
            )
        if settings.prepare_workers is None:  # share the cores among the GPU workers' preparation processes
            settings = replace(settings, prepare_workers=max(0, cpus // count - 1))
        return replace(settings, device="cuda"), {"concurrency": count, "num_gpus": 1, "num_cpus": 1}
    count = 1 if workers is None else workers
    if count > cpus:
        raise ValueError(
            f"workers={count} but the Ray cluster has {cpus} CPU(s): use at most {cpus} CPU workers"
        )
    if settings.threads is None:
        settings = replace(settings, threads=max(1, cpus // count))
    return replace(settings, device="cpu"), {"concurrency": count, "num_cpus": 1}


def _run_dataset(
    ray: Any,
    source: RerankInput,
    settings: PrunerSettings,
    options: dict[str, Any],
    queries_per_batch: int,
    max_retries: int,
    fault: FailOnce | None,
    progress: bool,
) -> Iterator[QueryOutput]:
    context = ray.data.DataContext.get_current()
    saved = (
        context.execution_options.preserve_order,
        context.actor_task_retry_on_errors,
        context.enable_progress_bars,
    )
    context.execution_options.preserve_order = True
    context.actor_task_retry_on_errors = max_retries > 0
    context.enable_progress_bars = progress
    try:
        items = [{"qid": task.qid, "payload": task.to_payload()} for task in source.tasks]
        blocks = max(1, math.ceil(len(items) / queries_per_batch))
        with warnings.catch_warnings():
            # Ray 2.60 deprecates these two remote args (to go in 2.64) and names no replacement; without
            # them Ray Data retries forever (-1), which would hang a run on a batch that always crashes
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
                RayRerankPruneWorker,
                fn_constructor_kwargs={"settings": settings, "fault": fault},
                batch_size=queries_per_batch,
                batch_format="numpy",
                max_restarts=max_retries,
                max_task_retries=max_retries,
                **options,
            )
        for row in dataset.iter_rows():
            yield QueryOutput.from_row(row)
    finally:
        (
            context.execution_options.preserve_order,
            context.actor_task_retry_on_errors,
            context.enable_progress_bars,
        ) = saved
