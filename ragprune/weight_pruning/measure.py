"""Measuring pruned models: parameter counts, fp16 size, and scoring / timing many models on pairs that
are tokenized once.

:class:`PreparedPairs` holds (query, passage) pairs prepared once by the pipeline's own code
(``ragprune.pipeline.parallel.RowPreparer``); :func:`score_pairs` runs any model over them through the
pipeline's stage runner (``ragprune.pipeline.runner.Runner``), so the rank logits and sentence decisions
are exactly what ``RerankPruner.process`` returns for those pairs, without tokenizing again for every
model. :func:`throughput` times several models on the same pairs in alternation (side by side).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ragprune.models.encoder import RerankPruneModel
from ragprune.normalize import repair_text
from ragprune.pipeline.encoding import PairTemplate
from ragprune.pipeline.graphs import EncoderGraphs
from ragprune.pipeline.parallel import RowPreparer, default_workers
from ragprune.pipeline.prepared import PreparedShard
from ragprune.pipeline.runner import PairColumns, Runner
from ragprune.types import InputLimits, Span
from ragprune.weight_pruning.structures import layer_prefixes


def parameter_counts(model: RerankPruneModel) -> dict[str, int]:
    """``total`` (encoder + heads), ``encoder`` (embeddings + layers), ``layers`` (transformer layers only),
    ``embeddings``, ``heads``, and ``nonzero_layers`` (layer parameters that are not zero: what masks
    leave)."""
    prefixes = tuple(layer_prefixes(model))
    counts = {"total": 0, "encoder": 0, "layers": 0, "embeddings": 0, "heads": 0, "nonzero_layers": 0}
    for name, parameter in model.named_parameters():
        n = parameter.numel()
        counts["total"] += n
        if name.startswith("heads."):
            counts["heads"] += n
            continue
        counts["encoder"] += n
        if name.startswith(prefixes):
            counts["layers"] += n
            counts["nonzero_layers"] += int((parameter != 0).sum())
        else:
            counts["embeddings"] += n
    return counts


def fp16_megabytes(model: RerankPruneModel) -> float:
    """Size of the weights stored in fp16 (2 bytes per parameter, dense storage), in MB (1e6 bytes)."""
    return 2 * sum(p.numel() for p in model.parameters()) / 1e6


@dataclass
class PreparedPairs:
    """Pairs tokenized once: ``query_ids[i]``, ``texts[i]``, ``titles[i]`` and their prepared rows as the
    flat shard the runner reads (``shard``; no timed run re-prepares or re-packs it)."""

    query_ids: list[np.ndarray]
    texts: list[str]
    titles: list[str]
    shard: PreparedShard

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, count: int) -> PreparedPairs:
        """The first ``count`` pairs."""
        head = PreparedShard.from_pairs([self.shard[p] for p in range(min(count, len(self)))])
        return PreparedPairs(self.query_ids[:count], self.texts[:count], self.titles[:count], head)


def prepare_pairs_once(
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    queries: Sequence[str],
    pairs: Sequence[tuple[int, str, str]],
    workers: int | None = None,
) -> PreparedPairs:
    """Tokenize ``pairs`` (``(query index, passage text, title)``) once, as ``RerankPruner.process`` would
    (texts repaired by ``ragprune.normalize``, queries cut to the window's query budget). ``workers``: row
    preparation processes (default: as the pipeline on a GPU machine, ``cpu_count - 1``)."""
    template = PairTemplate.from_tokenizer(tokenizer)
    limit = InputLimits.for_window(max_length, template.overhead).max_query_tokens
    encoded = tokenizer([repair_text(q) for q in queries], add_special_tokens=False, verbose=False)
    query_ids = [np.asarray(ids[:limit], dtype=np.int64) for ids in encoded["input_ids"]]
    ids = [query_ids[q] for q, _, _ in pairs]
    texts = [repair_text(text) for _, text, _ in pairs]
    titles = [repair_text(title) for _, _, title in pairs]
    preparer = RowPreparer(
        tokenizer, template, max_length, default_workers("cuda") if workers is None else workers
    )
    try:
        shard = PreparedShard.concat(list(preparer.shards(ids, texts, titles)))
    finally:
        preparer.close()
    return PreparedPairs(ids, texts, titles, shard)


class _Cached:
    """A ``RowPreparer`` stand-in that hands the runner pairs prepared earlier."""

    def __init__(self, pairs: PreparedPairs) -> None:
        self.pairs = pairs

    def shards(self, query_ids: list, texts: list, titles: list) -> Generator[PreparedShard, None, None]:
        yield self.pairs.shard

    def close(self) -> None:
        return None


def inference_copy(model: RerankPruneModel, device: torch.device | str) -> RerankPruneModel:
    """A copy of ``model`` on ``device`` in eval mode and the pipeline's dtype there (bf16 on CUDA, fp32 on
    the CPU), as ``RerankPruner`` runs it."""
    device = torch.device(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return copy.deepcopy(model).to(device, dtype).eval()


def score_pairs(
    model: RerankPruneModel,
    pairs: PreparedPairs,
    device: torch.device | str,
    threshold: float | None = None,
    batch_size: int = 64,
    pad_id: int = 0,
    ready: bool = False,
    graphs: EncoderGraphs | None = None,
    cuda_graphs: bool = True,
) -> PairColumns:
    """Rank logits and sentence keep decisions of every pair (``PairColumns``, pair order), at ``threshold``
    (default: the model's). ``ready=True``: ``model`` is already an :func:`inference_copy` on ``device``.
    On CUDA the encoder replays CUDA graphs as ``RerankPruner`` does (``cuda_graphs=False``: eagerly):
    ``graphs`` of this ready model to reuse across calls (captured shapes are kept), else new ones."""
    device = torch.device(device)
    runnable = model if ready else inference_copy(model, device)
    if graphs is None and cuda_graphs and device.type == "cuda":
        graphs = EncoderGraphs(runnable)
    if graphs is not None and graphs.model is not runnable:
        raise ValueError("graphs belong to another model: pass them with ready=True and that model")
    runner = Runner(
        runnable,
        _Cached(pairs),  # type: ignore[arg-type]  # has the one method Runner calls
        device=device,
        pad_id=pad_id,
        batch_size=batch_size,
        max_length=model.config.max_length,
        reduce=model.config.sentence_reduce,
        scoring_backend="auto",
        graphs=graphs,
    )
    _, columns = runner.run(
        pairs.query_ids, pairs.texts, pairs.titles, model.config.threshold if threshold is None else threshold
    )
    return columns


def kept_spans(pairs: PreparedPairs, columns: PairColumns) -> list[list[Span]]:
    """The kept sentence spans of every pair (pair order), as ``PassageResult.kept_spans``."""
    out = []
    for p in range(len(pairs)):
        kept = columns.sentence_kept[columns.sentences_of(p)]
        out.append([span for span, keep in zip(pairs.shard.spans(p), kept) if keep])
    return out


def throughput(
    models: dict[str, RerankPruneModel],
    pairs: PreparedPairs | Mapping[str, PreparedPairs],
    device: torch.device | str,
    repeats: int = 3,
    batch_size: int = 64,
) -> dict[str, dict[str, float]]:
    """Pairs per second of each model on the same prepared pairs (encoder + heads + sentence scoring; the
    tokenization done once is not counted), measured in alternation: two warm-up passes over all the
    pairs each (on CUDA they capture the encoder's graphs), then ``repeats`` rounds in which every model
    runs once. ``models`` are :func:`inference_copy` copies already on ``device``; ``pairs`` may map each
    model's name to its own tokenization of the same pairs (models with different vocabularies). Returns
    name -> ``{"median", "min", "max"}`` pairs/s."""
    device = torch.device(device)
    own = {name: pairs[name] if isinstance(pairs, Mapping) else pairs for name in models}
    timings: dict[str, list[float]] = {name: [] for name in models}
    graphs = {name: EncoderGraphs(model) if device.type == "cuda" else None for name, model in models.items()}
    for name, model in models.items():  # warm-up: every batch shape seen twice (on CUDA: captured)
        for _ in range(2):
            score_pairs(model, own[name], device, batch_size=batch_size, ready=True, graphs=graphs[name])
    for _ in range(repeats):
        for name, model in models.items():
            _synchronize(device)
            start = time.perf_counter()
            score_pairs(model, own[name], device, batch_size=batch_size, ready=True, graphs=graphs[name])
            _synchronize(device)
            timings[name].append(len(own[name]) / (time.perf_counter() - start))
    return {
        name: {"median": float(np.median(t)), "min": float(min(t)), "max": float(max(t))}
        for name, t in timings.items()
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
