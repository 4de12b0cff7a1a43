"""The stage runner: prepared pairs → encoder batches → per-head outputs as flat (columnar) arrays.

Stages, each with one job:

1. **prepare** (pure, in worker processes: ``ragprune.pipeline.parallel``): tokens, rows, sentences, as
   flat arrays (``PreparedShard``);
2. **encode**: rows of one padded width per batch (``pad_block``: array operations, no loop per row; on
   CUDA the batch's index arrays go in one copy from one pinned buffer, without blocking), one encoder
   pass (on CUDA replayed from a graph per batch shape when the runner has
   :class:`~ragprune.pipeline.graphs.EncoderGraphs`);
3. **heads**: every ``"cls"`` head per row, the token head's sentence scores and keep flags per pair
   (the fused kernel when the head is a linear map, its probabilities and the reduction-only kernel
   otherwise);
4. **collect** into :class:`PairColumns`: one entry per pair, sentences of all pairs in one flat array.
   A batch's outputs (all heads' values, sentence scores, keep flags) are copied back in one copy while the
   next batch runs (on CUDA: an asynchronous copy and an event per batch), so the host prepares batch
   ``i + 1`` while the GPU computes batch ``i``.

The list stage (heads that read one query's candidates) and the assembly of result objects run on these
columns (``ragprune.pipeline.list_stage``, ``ragprune.pipeline.process``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ragprune.kernels import SentenceScores, reduce_sentences, score_sentences
from ragprune.models.encoder import RerankPruneModel
from ragprune.pipeline.collate import pad_block
from ragprune.pipeline.encoding import CUDA_WIDTH_STEP, WIDTH_STEP, padded_width
from ragprune.pipeline.graphs import EncoderGraphs
from ragprune.pipeline.parallel import RowPreparer
from ragprune.pipeline.prepared import PreparedShard
from ragprune.pipeline.ragged import offsets_of, segment_index

PROGRESS_MIN_BATCHES = 20
ENCODE_WINDOW_BATCHES = 8
"""As preparation streams in, pairs are length-sorted and encoded in windows of this many times
``batch_size`` pairs (as many batches when each pair is one row), ..."""
MIN_WINDOWS = 8
"""... or of a smaller share of the call, so that it has at least this many windows (and at least one batch
per window): the encoder starts once the first eighth of a large call is prepared, not the first
``ENCODE_WINDOW_BATCHES`` batches, and only the last eighth is encoded after preparation ends."""


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

    A pair's rows are padded to the width its longest row sets (``padded_width``, in steps of
    ``width_step`` tokens: by default 8 on the CPU and 32 on CUDA) and batched only with rows of that width;
    the rank head reduces each row on its own, so a pair's outputs do not depend on the other pairs of the
    call (bit-identical on CPU).
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
        graphs: EncoderGraphs | None = None,
        width_step: int | None = None,
    ) -> None:
        self.model = model
        if width_step is None:
            width_step = CUDA_WIDTH_STEP if device.type == "cuda" else WIDTH_STEP
        if width_step < WIDTH_STEP or width_step % WIDTH_STEP:
            raise ValueError(f"width_step must be a positive multiple of {WIDTH_STEP}, got {width_step}")
        self.width_step = width_step
        """Rows are padded to a multiple of this many tokens (``padded_width``)."""
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
        self.graphs = graphs
        """CUDA graphs of the encoder (``ragprune.pipeline.graphs``), or ``None``: the eager forward."""

    def run(
        self,
        query_ids: list[np.ndarray],
        texts: list[str],
        titles: list[str],
        threshold: float,
        progress: bool | None = None,
    ) -> tuple[PreparedShard, PairColumns]:
        """Prepare and encode pair ``i`` = (``query_ids[i]``, ``texts[i]``, ``titles[i]``).

        ``query_ids`` are token ids that fit the window (``process`` checks and cuts queries; pairs of one
        query may share one array); ``progress`` shows a bar (``None``: only for calls of at least
        ``PROGRESS_MIN_BATCHES`` batches). Returns the prepared pairs (``shard[p]`` is pair ``p``) and the
        outputs.
        """
        collector = _Collector(len(texts), list(self.cls_heads), self._vector_layout())
        share = -(-len(texts) // MIN_WINDOWS)
        window = min(ENCODE_WINDOW_BATCHES * self.batch_size, max(self.batch_size, share))
        shards = self.preparer.shards(query_ids, texts, titles)
        done: list[PreparedShard] = []
        waiting: list[PreparedShard] = []
        # closing(): an error mid-stream cancels the shards still queued for the workers
        with closing(shards), self._progress_bar(len(texts), progress) as bar, torch.inference_mode():
            encoded = 0
            for shard in shards:
                waiting.append(shard)
                ready = sum(map(len, waiting))
                if ready >= window or encoded + ready == len(texts):
                    block = PreparedShard.concat(waiting)
                    self._run_window(block, encoded, threshold, collector, bar)
                    done.append(block)
                    encoded += ready
                    waiting = []
            collector.finish()
        return PreparedShard.concat(done), collector.columns()

    def _vector_layout(self) -> tuple[int, torch.dtype, torch.device] | None:
        """Size, dtype and device of the ``[CLS]`` vectors :class:`PairColumns` carries, or ``None`` when
        the runner keeps none."""
        if not self.keep_vectors:
            return None
        first = next(self.model.parameters())
        return self.model.backbone_config.hidden_size, first.dtype, first.device

    def _progress_bar(self, pairs: int, show: bool | None) -> AbstractContextManager:
        if show is None:
            show = pairs >= PROGRESS_MIN_BATCHES * self.batch_size
        if not show:
            return nullcontext(_NoProgress())
        from tqdm.auto import tqdm

        return tqdm(total=pairs, desc="ragprune", unit="pair")

    def _run_window(
        self,
        block: PreparedShard,
        first_pair: int,
        threshold: float,
        collector: _Collector,
        progress: _NoProgress,
    ) -> None:
        """Encode the pairs of ``block`` (pair ``p`` of it is pair ``first_pair + p`` of the call) in batches
        of one padded width. Pairs without rows (no passage token) are counted and left out."""
        row_counts = block.row_counts
        encoded = np.flatnonzero(row_counts > 0)
        if len(encoded) < len(block):
            progress.update(len(block) - len(encoded))
        if not len(encoded):
            return
        longest = np.maximum.reduceat(block.rows.lengths, block.pair_rows[encoded])
        widths = padded_width(longest, self.max_length, self.width_step)
        order = encoded[np.lexsort((encoded, row_counts[encoded], widths))]
        width_of = dict(zip(encoded.tolist(), widths.tolist()))
        for batch in width_batches(order, row_counts, width_of, self.batch_size):
            launched = self._launch(block, batch, width_of[int(batch[0])], threshold, first_pair)
            collector.add(launched)
            progress.update(len(batch))

    def _launch(
        self, block: PreparedShard, batch: np.ndarray, width: int, threshold: float, first_pair: int
    ) -> _Launched:
        """Pad, copy to the device and encode one batch; its outputs start their copy back to the host."""
        row_counts = block.row_counts[batch]
        sentence_counts = block.sentence_counts[batch]
        sentence_offset = offsets_of(sentence_counts)
        rows = segment_index(block.pair_rows[batch], row_counts)
        row_pair = np.repeat(np.arange(len(batch)), row_counts)
        padded = pad_block(block.rows, rows, self.pad_id, width, sentence_offset[row_pair])

        timer = self.stage_timer or StageTimer.disabled
        sentence_pair = np.repeat(np.arange(len(batch)), sentence_counts)
        input_ids, attention_mask, token_type_ids, sentence_ids, sentence_pair_ids = on_device(
            self.device,
            padded.input_ids,
            padded.attention_mask,
            padded.token_type_ids,
            padded.sentence_ids,
            sentence_pair,
        )
        # a graph's output is rewritten by its next replay: every reader is queued before another thread
        # sharing the graphs may encode
        with self.graphs.lock if self.graphs is not None else nullcontext():
            with timer("encoder"):
                encode = self.graphs.encode if self.graphs is not None else self.model.encode
                hidden = encode(input_ids, attention_mask, token_type_ids)
            with timer("scoring"):
                cls_outputs = [head(hidden[:, 0]).float() for head in self.cls_heads.values()]
                scored = self._score_sentences(hidden, sentence_ids, sentence_pair_ids, len(batch), threshold)
            # one copy back per batch: every head's row values, then sentence scores and keep flags
            outputs = cls_outputs + [scored.scores.float(), scored.keep.float()]
            return _Launched(
                pairs=first_pair + batch,
                row_counts=row_counts,
                sentence_counts=sentence_counts,
                heads=list(self.cls_heads),
                outputs=self._to_host(torch.cat(outputs)),
                vectors=hidden[:, 0].clone() if self.keep_vectors else None,
                ready=_recorded_event(self.device),
            )

    def _score_sentences(
        self,
        hidden: torch.Tensor,
        sentence_ids: torch.Tensor,
        sentence_pair: torch.Tensor,
        num_pairs: int,
        threshold: float,
    ) -> SentenceScores:
        """The token head's sentence scores and keep flags for the ``num_pairs`` pairs of the batch
        (``sentence_ids``: ``[R, W]`` batch-wide sentence of each token; ``sentence_pair``: ``[S]`` the
        batch's pair of each sentence)."""
        head = self.model.head("token")
        linear = head.linear_map()
        options: dict[str, Any] = {
            "reduce": self.reduce,
            "num_pairs": num_pairs,
            "backend": self.scoring_backend,
        }
        if linear is None:  # any other token head: its probabilities, reduced per sentence
            probabilities = torch.sigmoid(head(hidden).float())
            return reduce_sentences(
                probabilities, sentence_ids, sentence_pair, threshold, **options, validate=False
            )
        weight, bias = linear
        return score_sentences(
            hidden, weight, bias, sentence_ids, sentence_pair, threshold, **options, validate=False
        )

    def _to_host(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` on the CPU; from CUDA an asynchronous copy into pinned memory (valid once the batch's
        ``ready`` event has completed)."""
        return tensor.to("cpu", non_blocking=self.device.type == "cuda")


def to_device_packed(arrays: Sequence[np.ndarray], device: torch.device, pin: bool) -> list[torch.Tensor]:
    """``arrays`` as int64 tensors of their shapes on ``device``, in one copy: laid end to end in one host
    buffer (page-locked when ``pin``, so the copy is asynchronous), copied, then split into views."""
    sizes = [a.size for a in arrays]
    staged = torch.empty(sum(sizes), dtype=torch.int64, pin_memory=pin)
    np.concatenate([np.asarray(a, dtype=np.int64).reshape(-1) for a in arrays], out=staged.numpy())
    flat = staged.to(device, non_blocking=pin)
    return [part.view(a.shape) for part, a in zip(flat.split(sizes), arrays)]


def on_device(device: torch.device, *arrays: np.ndarray) -> list[torch.Tensor]:
    """``arrays`` as int64 tensors on ``device``: on the CPU the arrays' own memory, elsewhere
    :func:`to_device_packed` (one copy; on CUDA from pinned memory, so it does not block the host: a copy out
    of pageable memory would wait for the work queued before it, the batch in flight included)."""
    if device.type == "cpu":
        return [torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)) for a in arrays]
    return to_device_packed(arrays, device, pin=device.type == "cuda")


def _recorded_event(device: torch.device) -> torch.cuda.Event | None:
    """An event recorded after the work queued so far on ``device``'s current stream (``None`` off CUDA)."""
    if device.type != "cuda":
        return None
    event = torch.cuda.Event()
    event.record()
    return event


@dataclass
class _Launched:
    """One batch in flight: which pairs it holds (``[B]`` indices of the call, rows and sentences per pair)
    and its outputs in one float32 host tensor (``outputs``, ``[len(heads) * R + 2 * S]``: the ``[R]``
    values of each of ``heads`` in turn, then ``[S]`` sentence scores and ``[S]`` keep flags as 0/1),
    complete once ``ready`` has completed; the ``[CLS]`` vectors ``[R, H]`` stay on the device."""

    pairs: np.ndarray
    row_counts: np.ndarray
    sentence_counts: np.ndarray
    heads: list[str]
    outputs: torch.Tensor
    vectors: torch.Tensor | None
    ready: torch.cuda.Event | None

    def split(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """``outputs`` read back: ``[R]`` row values per head, ``[S]`` sentence scores and keep flags (bool),
        as arrays of their own (the pinned buffer is not kept). ``ValueError`` when a ``"cls"`` head did
        not give one value per row."""
        rows, sentences = int(self.row_counts.sum()), int(self.sentence_counts.sum())
        flat = self.outputs.numpy()
        if len(flat) != len(self.heads) * rows + 2 * sentences:
            raise ValueError(
                f"the heads {self.heads} gave {len(flat) - 2 * sentences} values for {rows} rows: a 'cls' "
                "head must return one value per row ([R])"
            )
        row_values = {name: flat[i * rows : (i + 1) * rows].copy() for i, name in enumerate(self.heads)}
        start = len(self.heads) * rows
        scores = flat[start : start + sentences].copy()
        return row_values, scores, flat[start + sentences : start + 2 * sentences] > 0.5


class _Collector:
    """Per-pair outputs as batches finish (in length order), laid out by pair index at the end.

    A batch is read one batch late (``add`` takes the new batch and reads the previous one), so reading
    it back waits only for that batch while the next one is already queued on the device.
    """

    def __init__(
        self, pairs: int, heads: list[str], vectors: tuple[int, torch.dtype, torch.device] | None = None
    ) -> None:
        self.vector_layout = vectors
        """``(size, dtype, device)`` of the vectors to collect (zeros for pairs not encoded), or ``None``."""
        self.values = {name: np.full(pairs, -np.inf) for name in heads}
        self.chunks = np.zeros(pairs, dtype=np.int64)
        self.sentence_counts = np.zeros(pairs, dtype=np.int64)
        self.batches: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.vectors: list[tuple[np.ndarray, torch.Tensor]] = []
        self.in_flight: _Launched | None = None

    def add(self, launched: _Launched) -> None:
        """Take a batch just launched; read the one before it."""
        previous, self.in_flight = self.in_flight, launched
        if previous is not None:
            self._read(previous)

    def finish(self) -> None:
        """Read the last batch."""
        if self.in_flight is not None:
            self._read(self.in_flight)
            self.in_flight = None

    def _read(self, batch: _Launched) -> None:
        if batch.ready is not None:
            batch.ready.synchronize()
        row_values, scores, kept = batch.split()
        row_start = offsets_of(batch.row_counts)
        best = row_start[:-1].copy()  # each pair's best chunk: the row with the highest rank logit
        for i in np.flatnonzero(batch.row_counts > 1).tolist():
            best[i] += int(np.argmax(row_values["rank"][row_start[i] : row_start[i + 1]]))
        for name, values in row_values.items():
            self.values[name][batch.pairs] = values[best]
        self.chunks[batch.pairs] = batch.row_counts
        self.sentence_counts[batch.pairs] = batch.sentence_counts
        self.batches.append((batch.pairs, offsets_of(batch.sentence_counts)[:-1], scores, kept))
        if batch.vectors is not None:
            vectors = batch.vectors
            if len(best) != len(vectors):  # a pair of several chunks: keep its best chunk's row
                vectors = vectors[on_device(vectors.device, best)[0]]
            self.vectors.append((batch.pairs, vectors))

    def columns(self) -> PairColumns:
        """The outputs in pair order (sentences of all pairs back to back)."""
        offsets = offsets_of(self.sentence_counts)
        pairs = np.concatenate([np.zeros(0, np.int64)] + [b[0] for b in self.batches])
        # where each pair's sentences start in the batches' arrays laid end to end
        sizes = np.fromiter((len(b[2]) for b in self.batches), dtype=np.int64, count=len(self.batches))
        batch_start = offsets_of(sizes)[:-1]
        starts = np.concatenate(
            [np.zeros(0, np.int64)] + [first + s for first, (_, s, _, _) in zip(batch_start, self.batches)]
        )
        by_pair = np.argsort(pairs, kind="stable")
        index = segment_index(starts[by_pair], self.sentence_counts[pairs[by_pair]])
        scores = np.concatenate([np.zeros(0, np.float32)] + [b[2] for b in self.batches])[index]
        kept = np.concatenate([np.zeros(0, bool)] + [b[3] for b in self.batches])[index]
        vectors = None
        if self.vector_layout is not None:
            size, dtype, device = self.vector_layout
            vectors = torch.zeros((len(self.chunks), size), dtype=dtype, device=device)
            if self.vectors:  # one index copy for every batch, then each batch into its slice of it
                (where,) = on_device(
                    device, np.concatenate([pairs_of_batch for pairs_of_batch, _ in self.vectors])
                )
                start = 0
                for pairs_of_batch, batch_vectors in self.vectors:
                    vectors[where[start : start + len(pairs_of_batch)]] = batch_vectors.to(dtype)
                    start += len(pairs_of_batch)
        return PairColumns(self.values, self.chunks, offsets, scores, kept, vectors)


def width_batches(
    order: np.ndarray, row_counts: np.ndarray, widths: dict[int, int], batch_size: int
) -> list[np.ndarray]:
    """Consecutive pairs of ``order`` grouped so a batch holds at most ``batch_size`` rows, all of one width
    (``row_counts[p]``: rows of pair ``p``; ``widths[p]``: its padded width).

    A pair's chunks always share a batch, so sentences cut across chunks are reduced in one launch.
    """
    batches: list[np.ndarray] = []
    start = rows = 0
    counts = row_counts[order].tolist()
    pairs = order.tolist()
    for i, (p, n) in enumerate(zip(pairs, counts)):
        if i > start and (rows + n > batch_size or widths[p] != widths[pairs[start]]):
            batches.append(order[start:i])
            start, rows = i, 0
        rows += n
    if start < len(pairs):
        batches.append(order[start:])
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
