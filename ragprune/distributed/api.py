"""``rerank_prune``: the one entry of the engines (``inline``, ``local``, ``ray``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ragprune.distributed.faults import FailOnce
from ragprune.distributed.output import OutputWriter
from ragprune.distributed.tasks import RerankInput
from ragprune.distributed.work import PrunerSettings, QueryOutput

ENGINES = ("inline", "local", "ray")
DEFAULT_QUERIES_PER_BATCH = 8


@dataclass(frozen=True)
class RunSummary:
    """What a run did: ``queries`` and ``pairs`` written, ``seconds`` of wall time from the first model
    load to the last line written, ``mean_compression`` (share of the scored text pruning removed),
    ``engine``, ``workers``, ``fusion`` and, with ``collect_run=True``, the reranked ``run``.
    ``first_output_seconds``: from the start to the first query written (worker start-up, model loads and
    the first batch); ``first_output_pairs``: that query's pairs (``steady_pairs_per_second`` leaves both
    out: the rate once the workers run)."""

    queries: int
    pairs: int
    seconds: float
    mean_compression: float
    engine: str
    workers: int
    fusion: str
    run: dict[str, dict[str, float]] | None = None
    first_output_seconds: float = 0.0
    first_output_pairs: int = 0

    @property
    def pairs_per_second(self) -> float:
        """End to end: every pair over the whole wall time, worker start-up included."""
        return self.pairs / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_pairs_per_second(self) -> float:
        """The pairs after the first query over the time after it (0 when there is only one query)."""
        seconds = self.seconds - self.first_output_seconds
        return (self.pairs - self.first_output_pairs) / seconds if seconds > 0 else 0.0


def rerank_prune(
    source: RerankInput | str | Path,
    run_output: str | Path,
    pruned_output: str | Path | None = None,
    *,
    engine: str = "ray",
    workers: int | None = None,
    model: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 64,
    queries_per_batch: int = DEFAULT_QUERIES_PER_BATCH,
    threshold: float | None = None,
    fusion: str | None = None,
    mode: str = "pointwise",
    top_k: int | None = None,
    tag: str = "ragprune",
    max_retries: int = 3,
    ray_address: str | None = None,
    collect_run: bool = False,
    progress: bool = False,
    fault: FailOnce | None = None,
) -> RunSummary:
    """Rerank + prune every query of ``source`` and write the reranked TREC run to ``run_output`` and, if
    given, one pruned-JSONL line per query to ``pruned_output`` (``"-"``: standard output), in query-id
    order: the files ``ragprune rerank --output/--pruned-output`` writes, whatever the engine.

    ``source``: a :class:`RerankInput` (:func:`~ragprune.distributed.inputs.read_trec`,
    :func:`~ragprune.distributed.inputs.read_rows`) or the path of a ``.jsonl`` / ``.parquet`` row file
    (then ``top_k``: candidates per query, ``None`` all; otherwise ``top_k`` must be ``None``).

    ``engine``: ``"ray"`` (Ray Data; ``workers`` actors, default one per GPU of the cluster or one CPU
    actor; ``ray_address`` as for ``ray.init``), ``"local"`` (``workers`` spawned processes, default one
    per local GPU or two CPU processes) or ``"inline"`` (this process). ``device``: ``None`` (GPUs when
    there are any), ``"cuda"`` or ``"cpu"`` (the inline engine also takes ``"cuda:N"``).
    ``queries_per_batch`` whole queries go to a worker at a time (one ``process`` call; its pairs are
    batched ``batch_size`` encoder rows per forward pass). ``threshold``, ``mode`` are ``process``'s;
    ``fusion`` is a ``ragprune.fusion`` spec (``None``: the library default when the first stage gave
    scores, ``"none"`` for rows without a ``score``). ``max_retries``: attempts a failed batch (raised, or
    its worker died) gets again before the run stops. ``fault``: see :class:`FailOnce` (drills and tests).

    Returns a :class:`RunSummary`. Raises ``ValueError`` for bad options (naming the fix), the readers'
    ``DataFormatError`` / ``DataMismatchError`` for bad input (before any model loads), ``ImportError``
    for ``engine="ray"`` without Ray, and :class:`~ragprune.distributed.output.IncompleteOutputError` if
    the outputs miss or repeat a query (naming the query ids).
    """
    from ragprune.fusion import DEFAULT_FUSION, parse_fusion

    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}; use one of {ENGINES}")
    if queries_per_batch < 1:
        raise ValueError(f"queries_per_batch={queries_per_batch}; use a positive number of queries")
    if max_retries < 0:
        raise ValueError(f"max_retries={max_retries}; use 0 (no retry) or more")
    if not isinstance(source, RerankInput):
        from ragprune.distributed.inputs import read_rows

        source = read_rows(source, top_k=top_k)
    elif top_k is not None:
        raise ValueError(
            "top_k applies to a row file; a RerankInput has its top_k already (read_trec(top_k=))"
        )
    fusion_spec = str(
        parse_fusion(fusion if fusion is not None else DEFAULT_FUSION if source.has_scores else "none")
    )
    settings = PrunerSettings(
        model=None if model is None else str(model),
        top_k=source.top_k,
        fusion=fusion_spec,
        device=device,
        batch_size=batch_size,
        threshold=threshold,
        mode=mode,
    )
    with OutputWriter(run_output, pruned_output, tag, collect_run) as writer:
        start = time.perf_counter()
        outputs, count = _outputs(
            engine, source, settings, workers, queries_per_batch, max_retries, fault, ray_address, progress
        )
        first: tuple[float, int] | None = None
        for output in outputs:
            writer.write(output)
            if first is None:
                first = (time.perf_counter() - start, output.pairs)
        seconds = time.perf_counter() - start
    writer.check(source)
    return RunSummary(
        queries=len(source),
        pairs=writer.pairs,
        seconds=seconds,
        mean_compression=writer.mean_compression,
        engine=engine,
        workers=count,
        fusion=fusion_spec,
        run=writer.run,
        first_output_seconds=first[0] if first else 0.0,
        first_output_pairs=first[1] if first else 0,
    )


def _outputs(
    engine: str,
    source: RerankInput,
    settings: PrunerSettings,
    workers: int | None,
    queries_per_batch: int,
    max_retries: int,
    fault: FailOnce | None,
    ray_address: str | None,
    progress: bool,
) -> tuple[Iterator[QueryOutput], int]:
    """The engine's output stream and its number of workers."""
    if engine == "ray":
        from ragprune.distributed.ray_engine import run_ray

        return run_ray(
            source, settings, workers, queries_per_batch, max_retries, fault, ray_address, progress
        )
    if engine == "local":
        from ragprune.distributed.local_engine import local_devices, run_local

        devices = local_devices(settings.device, workers)
        return run_local(source, settings, devices, queries_per_batch, max_retries, fault), len(devices)
    if workers not in (None, 1):
        raise ValueError(
            f"workers={workers}: the inline engine runs in this process; use engine='local' or 'ray'"
        )
    return _run_inline(source, settings, queries_per_batch, fault), 1


def _run_inline(
    source: RerankInput, settings: PrunerSettings, queries_per_batch: int, fault: FailOnce | None
) -> Iterator[QueryOutput]:
    from ragprune.distributed.work import process_tasks

    with settings.load() as pruner:
        for batch in source.batches(queries_per_batch):
            if fault is not None:
                fault.maybe_fail(task.qid for task in batch)
            yield from process_tasks(pruner, batch, settings)
