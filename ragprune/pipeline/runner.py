"""The stage runner: prepared pairs → encoder batches → per-head outputs as flat (columnar) arrays.

Stages, each with one job:

1. **prepare** (pure, in worker processes: ``ragprune.pipeline.parallel``): tokens, rows, sentences;
2. **encode**: rows of one padded width per batch (``pad_rows``), one encoder pass;
3. **heads**: every ``"cls"`` head per row, the token head's sentence scores and keep flags per pair
   (the fused kernel when the head is a linear map, its probabilities and the reduction-only kernel
   otherwise);
4. **collect** into :class:`PairColumns`: one entry per pair, sentences of all pairs in one flat array.

The list stage (heads that read one query's candidates) and the assembly of result objects run on these
columns (``ragprune.pipeline.list_stage``, ``ragprune.pipeline.process``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ragprune.kernels import SentenceScores, reduce_sentences, score_sentences
from ragprune.models.encoder import RerankPruneModel
from ragprune.pipeline.collate import pad_rows
from ragprune.pipeline.encoding import PreparedPair, Row, padded_width
from ragprune.pipeline.parallel import RowPreparer

PROGRESS_MIN_BATCHES = 20
ENCODE_WINDOW_BATCHES = 8
"""As preparation streams in, pairs are length-sorted and encoded in windows of this many times
``batch_size`` pairs (as many batches when each pair is one row)."""


@dataclass(frozen=True)
class PairColumns:
    """Outputs of ``P`` pairs as flat arrays (pair ``p`` is the ``p``-th pair given to :meth:`Runner.run`).

    - ``scores[name]``: ``[P]`` float64, the value of each ``"cls"`` head (``"rank"``: the relevance logit)
      on the pair's best chunk (the one with the highest rank logit); ``-inf`` for a pair not encoded;
    - ``chunks``: ``[P]`` int64, encoder rows of the pair (0: not encoded, the passage has no token);
    - ``sentence_offsets``: ``[P + 1]`` int64, pair ``p``'s sentences are entries
      ``sentence_offsets[p]:sentence_offsets[p + 1]`` of the sentence arrays (none for a pair not encoded);
    - ``sentence_scores``: ``[S]`` float32, sentence keep scores; ``sentence_kept``: ``[S]`` bool;
    - ``vectors``: ``[P, H]`` the best chunk's ``[CLS]`` hidden state (on the model's device, zeros for a
      pair not encoded) when a list-level head needs it, else ``None``.
    """

    scores: dict[str, np.ndarray]
    chunks: np.ndarray
    sentence_offsets: np.ndarray
    sentence_scores: np.ndarray
    sentence_kept: np.ndarray
    vectors: torch.Tensor | None

    def sentences_of(self, pair: int) -> slice:
        """The slice of the sentence arrays that belongs to ``pair``."""
        return slice(int(self.sentence_offsets[pair]), int(self.sentence_offsets[pair + 1]))


class Runner:
    """Encodes prepared pairs in width-bucketed batches and collects every pointwise head's output.

    A pair's rows are padded to the width its longest row sets (``padded_width``) and batched only with rows
    of that width; the rank head reduces each row on its own, so a pair's outputs do not depend on the other
    pairs of the call (bit-identical on CPU).
    """

    def __init__(
        self,
        model: RerankPruneModel,
        preparer: RowPreparer,
        *,
        device: torch.device,
        pad_id: int,
        batch_size: int,
        max_length: int,
        reduce: str,
        scoring_backend: str,
        stage_timer: StageTimer | None = None,
        keep_vectors: bool | None = None,
    ) -> None:
        self.model = model
        self.preparer = preparer
        self.device = device
        self.pad_id = pad_id
        self.batch_size = batch_size
        self.max_length = max_length
        self.reduce = reduce
        self.scoring_backend = scoring_backend
        self.stage_timer = stage_timer
        self.cls_heads = model.heads_reading("cls")
        self.keep_vectors = bool(model.heads_reading("candidates")) if keep_vectors is None else keep_vectors
        """Whether :class:`PairColumns` carries the ``[CLS]`` vectors (default: when a list-level head needs
        them; training of such a head sets it)."""

    def run(
        self,
        query_ids: list[np.ndarray],
        texts: list[str],
        titles: list[str],
        threshold: float,
        progress: bool | None = None,
    ) -> tuple[list[PreparedPair], PairColumns]:
        """Prepare and encode pair ``i`` = (``query_ids[i]``, ``texts[i]``, ``titles[i]``).

        ``query_ids`` are token ids that fit the window (``process`` checks and cuts queries); ``progress``
        shows a bar (``None``: only for calls of at least ``PROGRESS_MIN_BATCHES`` batches).
        """
        prepared: list[PreparedPair] = []
        collector = _Collector(len(texts), list(self.cls_heads))
        window = ENCODE_WINDOW_BATCHES * self.batch_size
        shards = self.preparer.shards(query_ids, texts, titles)
        # closing(): an error mid-stream cancels the shards still queued for the workers
        with closing(shards), self._progress_bar(len(texts), progress) as bar, torch.inference_mode():
            encoded = 0
            for shard in shards:
                prepared.extend(shard)
                if len(prepared) - encoded >= window or len(prepared) == len(texts):
                    self._run_window(range(encoded, len(prepared)), prepared, threshold, collector, bar)
                    encoded = len(prepared)
        return prepared, collector.columns(prepared)

    def _progress_bar(self, pairs: int, show: bool | None) -> AbstractContextManager:
        if show is None:
            show = pairs >= PROGRESS_MIN_BATCHES * self.batch_size
        if not show:
            return nullcontext(_NoProgress())
        from tqdm.auto import tqdm

        return tqdm(total=pairs, desc="ragprune", unit="pair")

    def _run_window(
        self,
        pair_indices: range,
        prepared: list[PreparedPair],
        threshold: float,
        collector: _Collector,
        progress: _NoProgress,
    ) -> None:
        """Encode the given prepared pairs in batches of one padded width. Pairs without rows (no passage
        token) are counted and left out."""
        rows_per_pair = {p: prepared[p].rows for p in pair_indices if prepared[p].rows}
        widths = {
            p: padded_width(max(len(row.input_ids) for row in rows), self.max_length)
            for p, rows in rows_per_pair.items()
        }
        order = sorted(rows_per_pair, key=lambda p: (widths[p], len(rows_per_pair[p]), p))
        if len(rows_per_pair) < len(pair_indices):
            progress.update(len(pair_indices) - len(rows_per_pair))
        for batch in width_batches(order, rows_per_pair, widths, self.batch_size):
            sentence_counts = [len(prepared[p].sentences) for p in batch]
            self._run_batch(batch, rows_per_pair, sentence_counts, widths[batch[0]], threshold, collector)
            progress.update(len(batch))

    def _run_batch(
        self,
        batch: list[int],
        rows_per_pair: dict[int, list[Row]],
        sentence_counts: list[int],
        width: int,
        threshold: float,
        collector: _Collector,
    ) -> None:
        rows = [row for p in batch for row in rows_per_pair[p]]
        row_counts = [len(rows_per_pair[p]) for p in batch]
        row_pair = np.repeat(np.arange(len(batch)), row_counts)
        sentence_offset = np.concatenate([[0], np.cumsum(sentence_counts)])
        padded = pad_rows(rows, self.pad_id, width, sentence_offset[row_pair])

        timer = self.stage_timer or StageTimer.disabled
        with timer("encoder"):
            hidden = self.model.encode(
                self._to_device(padded.input_ids),
                self._to_device(padded.attention_mask),
                self._to_device(padded.token_type_ids),
            )
        with timer("scoring"):
            cls_outputs = {name: head(hidden[:, 0]).float() for name, head in self.cls_heads.items()}
            scored = self._score_sentences(hidden, padded.sentence_ids, sentence_counts, threshold)
        scores = scored.scores.float().cpu().numpy()
        kept = scored.keep.cpu().numpy()
        row_values = {name: values.cpu().numpy() for name, values in cls_outputs.items()}
        row_start = np.concatenate([[0], np.cumsum(row_counts)])
        for i, p in enumerate(batch):
            first, last = row_start[i], row_start[i + 1]
            best = first + int(np.argmax(row_values["rank"][first:last]))
            a, b = sentence_offset[i], sentence_offset[i + 1]
            vector = hidden[best, 0] if self.keep_vectors else None
            collector.add(
                p, {k: v[best] for k, v in row_values.items()}, last - first, scores[a:b], kept[a:b], vector
            )

    def _score_sentences(
        self, hidden: torch.Tensor, sentence_ids: np.ndarray, sentence_counts: list[int], threshold: float
    ) -> SentenceScores:
        """The token head's sentence scores and keep flags for every pair of the batch."""
        sentence_pair = self._to_device(np.repeat(np.arange(len(sentence_counts)), sentence_counts))
        head = self.model.head("token")
        linear = head.linear_map()
        options: dict[str, Any] = {
            "reduce": self.reduce,
            "num_pairs": len(sentence_counts),
            "backend": self.scoring_backend,
        }
        if linear is None:  # any other token head: its probabilities, reduced per sentence
            probabilities = torch.sigmoid(head(hidden).float())
            ids = self._to_device(sentence_ids)
            return reduce_sentences(probabilities, ids, sentence_pair, threshold, **options, validate=False)
        weight, bias = linear
        ids = self._to_device(sentence_ids)
        return score_sentences(hidden, weight, bias, ids, sentence_pair, threshold, **options, validate=False)

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device, non_blocking=True)


class _Collector:
    """Per-pair outputs as batches finish (in length order), laid out by pair index at the end."""

    def __init__(self, pairs: int, heads: list[str]) -> None:
        self.values = {name: np.full(pairs, -np.inf) for name in heads}
        self.chunks = np.zeros(pairs, dtype=np.int64)
        self.sentence_scores: list[np.ndarray | None] = [None] * pairs
        self.sentence_kept: list[np.ndarray | None] = [None] * pairs
        self.vectors: dict[int, torch.Tensor] = {}

    def add(
        self,
        pair: int,
        values: dict[str, float],
        chunks: int,
        scores: np.ndarray,
        kept: np.ndarray,
        vector: torch.Tensor | None,
    ) -> None:
        for name, value in values.items():
            self.values[name][pair] = value
        self.chunks[pair] = chunks
        self.sentence_scores[pair], self.sentence_kept[pair] = scores, kept
        if vector is not None:
            self.vectors[pair] = vector

    def columns(self, prepared: list[PreparedPair]) -> PairColumns:
        counts = [0 if s is None else len(s) for s in self.sentence_scores]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        empty = np.zeros(0, dtype=np.float32)
        scores = np.concatenate([empty] + [s for s in self.sentence_scores if s is not None])
        kept = np.concatenate([np.zeros(0, dtype=bool)] + [k for k in self.sentence_kept if k is not None])
        vectors = None
        if self.vectors:
            like = next(iter(self.vectors.values()))
            vectors = torch.zeros((len(prepared), like.shape[-1]), dtype=like.dtype, device=like.device)
            for pair, vector in self.vectors.items():
                vectors[pair] = vector
        return PairColumns(self.values, self.chunks, offsets, scores, kept, vectors)


def width_batches(
    order: list[int], rows_per_pair: dict[int, list[Row]], widths: dict[int, int], batch_size: int
) -> list[list[int]]:
    """Consecutive pairs of ``order`` grouped so a batch holds at most ``batch_size`` rows, all of one width.

    A pair's chunks always share a batch, so sentences cut across chunks are reduced in one launch.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    rows = 0
    for p in order:
        n = len(rows_per_pair[p])
        if current and (rows + n > batch_size or widths[p] != widths[current[0]]):
            batches.append(current)
            current, rows = [], 0
        current.append(p)
        rows += n
    if current:
        batches.append(current)
    return batches


class StageTimer:
    """Accumulates the device time of pipeline stages (CUDA events on GPU, wall clock on CPU).

    Used by the benchmarks to report the share of ``process`` time spent after the encoder.
    """

    disabled: StageTimer

    def __init__(self, device: torch.device | None) -> None:
        self.device = device
        self._events: dict[str, list] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.device is None:
            yield
            return
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._events.setdefault(stage, []).append((start, end))
        else:
            begin = time.perf_counter()
            yield
            self._events.setdefault(stage, []).append(time.perf_counter() - begin)

    def milliseconds(self) -> dict[str, float]:
        """Total time per stage so far, in milliseconds."""
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return {k: sum(a.elapsed_time(b) for a, b in v) for k, v in self._events.items()}
        return {k: 1000.0 * sum(v) for k, v in self._events.items()}

    def reset(self) -> None:
        self._events.clear()


StageTimer.disabled = StageTimer(None)


class _NoProgress:
    """What the runner needs of a progress bar (``tqdm`` has it too): counting pairs done."""

    def update(self, n: int) -> None:
        """Progress is not shown."""
