"""CUDA graphs of the encoder: one captured forward per batch shape, replayed instead of launching it again.

At the batch shapes of reranking (a few hundred rows of ~100 tokens), the H200 finishes the encoder's
kernels faster than the host can launch them: measured on DL19 (4,096 pairs, 256-row batches) the
default model's kernels take 54 ms of a 170 ms pass, the rest is Python and launch work in the host
thread. A CUDA graph (``torch.cuda.CUDAGraph``; NVIDIA, "CUDA Graphs", CUDA C++ Programming Guide) records
every kernel of one forward once and replays them with one launch.

A graph has fixed input buffers and a fixed output tensor, so each shape gets its own graph: the row count
is padded up to the next of 1, 1.25, 1.5 or 1.75 times a power of two (at least :data:`MIN_ROWS`; the
runner already pads the width to a bucket), so shapes repeat across batches and calls while padding rows
cost under a fifth of a batch's work beyond :data:`MIN_ROWS` rows. A shape is captured the second time it
is seen (a one-off shape runs eagerly: capturing costs three forwards), and checked once against the
eager forward on the batch that triggered it; every graph draws on one memory pool.

Rules for callers (``Runner`` follows them):

* the output is overwritten by the next replay: queue everything that reads it on the current stream
  before encoding again, and hold :attr:`EncoderGraphs.lock` from ``encode`` until then when several
  threads share the object (a replay on another stream first waits for the previous replay's stream);
* the model keeps its parameter tensors: when they move (``.to()``, a new dtype), the graphs are dropped
  and captured again.

Capture needs a forward without host synchronisation; ``RerankPruneModel.encode`` gives a BERT backbone
with SDPA attention a 4-D mask on CUDA for that, and other backbones run eagerly. A capture that fails
or a graph that differs from the eager forward turns graphs off for the object, with one warning naming
the cause; results are the eager forward's either way.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from typing import Any

import torch

from ragprune.models.encoder import RerankPruneModel

MAX_GRAPHS = 64
"""Shapes captured at most per object; further shapes run eagerly (each graph keeps its buffers)."""
MIN_ROWS = 8
"""The smallest row bucket: batches of up to this many rows share one graph per width."""
WARMUP_RUNS = 2
"""Eager forwards on the capture stream before a capture (library workspaces and kernel choices settle)."""
CHECK_TOLERANCE = 0.05
"""Largest difference (absolute and relative, bf16 hidden states) allowed between a new graph's replay and
the eager forward on the batch it was captured for; beyond it graphs are turned off."""
FREE_MEMORY_SHARE = 0.2
"""A shape is captured only while more than this share of the GPU's memory stays available after its
buffers (each graph keeps its output ``[B, L, H]`` alive): on a small GPU, graphs stop before memory does."""


_CAPTURE = threading.Lock()
"""One capture at a time in the process (CUDA graphs' rule), whichever object captures."""


class EncoderGraphs:
    """``encode(input_ids, attention_mask, token_type_ids)`` as ``model.encode`` computes it (``[B, L, H]``
    last hidden states), replayed from CUDA graphs for shapes seen before (see the module docstring).

    ``replayed`` and ``eager`` count the batches of each kind (for benchmarks); ``disabled`` says why graphs
    are off, or is ``None``.
    """

    def __init__(self, model: RerankPruneModel, max_graphs: int = MAX_GRAPHS) -> None:
        self.model = model
        self.max_graphs = max_graphs
        self.graphs: dict[tuple[int, int], tuple[list[torch.Tensor], torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.seen: dict[tuple[int, int], int] = {}
        self.pool: Any = None
        """The memory pool the graphs share (``CUDAGraph.pool()`` of the first)."""
        self.lock = threading.Lock()
        self.replayed = 0
        self.eager = 0
        self.disabled: str | None = (
            None if model.takes_4d_mask else "the backbone is not BERT with SDPA attention"
        )
        self._watched, self._pointers = self._watch()
        self._side: torch.cuda.Stream | None = None
        self._last_stream: torch.cuda.Stream | None = None

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        """The encoder's last hidden states for inputs ``[B, L]``; on CUDA a view of a graph's output, valid
        until the next call (in inference mode, as the runner calls it)."""
        with torch.inference_mode():
            return self._encode(input_ids, attention_mask, token_type_ids)

    def _encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        if self.disabled or not input_ids.is_cuda:
            return self._eager(input_ids, attention_mask, token_type_ids)
        if self._weights_moved():  # the graphs would read freed memory
            self.graphs, self.seen, self.pool = {}, {}, None
            self._side = self._last_stream = None  # the weights may be on another GPU now
            self._watched, self._pointers = self._watch()
        rows = input_ids.shape[0]
        key = (row_bucket(rows), input_ids.shape[1])
        entry = self.graphs.get(key)
        if entry is None:
            self.seen[key] = self.seen.get(key, 0) + 1
            if (
                self.seen[key] < 2
                or len(self.graphs) >= self.max_graphs
                or not _room_for(key, self.model.backbone_config.hidden_size, input_ids.device)
            ):
                return self._eager(input_ids, attention_mask, token_type_ids)
            try:
                entry = self._capture(key, input_ids.device)
            except RuntimeError as error:  # a host synchronisation or an op that cannot be captured
                cause = error.__context__ or error  # capture_end's error follows the real one
                self._turn_off(str(cause).strip().splitlines()[0][:200])
                return self._eager(input_ids, attention_mask, token_type_ids)
            self.graphs[key] = entry
            replayed = self._replay(entry, input_ids, attention_mask, token_type_ids)
            eager = self._eager(input_ids, attention_mask, token_type_ids)
            # each new graph is checked once against the eager forward (one synchronisation per shape)
            close = torch.allclose(replayed.float(), eager.float(), CHECK_TOLERANCE, CHECK_TOLERANCE)
            if not close:
                self._turn_off(f"its graph of shape {key} differed from the eager forward")
            return eager
        return self._replay(entry, input_ids, attention_mask, token_type_ids)

    def _watch(self) -> tuple[list[weakref.ref], list[int]]:
        """Weak references to the encoder's parameters and buffers (what a graph reads), and where their
        data live now."""
        tensors = [*self.model.encoder.parameters(), *self.model.encoder.buffers()]
        return [weakref.ref(t) for t in tensors], [t.data_ptr() for t in tensors]

    def _weights_moved(self) -> bool:
        """Whether a tensor the graphs read moved (``.to()``: a new device or dtype) or was replaced since
        the last :meth:`_watch`: the first parameter is another tensor, a watched tensor was freed, or one
        lives at another address (every batch; ~20 µs for the MiniLM encoder's ~100 tensors). A Parameter
        object other than the first replaced by hand while the old one stays alive is not seen: build new
        graphs after such surgery."""
        first = next(self.model.encoder.parameters(), None)
        if not self._watched or first is not self._watched[0]():
            return True
        tensors = [ref() for ref in self._watched]
        return any(t is None or t.data_ptr() != p for t, p in zip(tensors, self._pointers))

    def _turn_off(self, reason: str) -> None:
        self.disabled = reason
        warnings.warn(
            f"ragprune: CUDA graphs are off for this model ({reason}); the encoder runs eagerly",
            RuntimeWarning,
            stacklevel=3,
        )

    def _replay(self, entry: tuple, *inputs: torch.Tensor) -> torch.Tensor:
        buffers, graph, output = entry
        rows = inputs[0].shape[0]
        stream = torch.cuda.current_stream(inputs[0].device)
        if self._last_stream is not None and self._last_stream != stream:
            stream.wait_stream(self._last_stream)  # the readers of the previous replay, on another stream
        self._last_stream = stream
        for buffer, value in zip(buffers, inputs):
            buffer[:rows].copy_(value, non_blocking=True)
        graph.replay()
        self.replayed += 1
        return output[:rows]

    def _eager(self, *inputs: torch.Tensor) -> torch.Tensor:
        self.eager += 1
        return self.model.encode(*inputs)

    def _capture(
        self, shape: tuple[int, int], device: torch.device
    ) -> tuple[list[torch.Tensor], torch.cuda.CUDAGraph, torch.Tensor]:
        """A graph of ``model.encode`` on buffers of ``shape``: padding rows (beyond a batch's own) start as
        one attended ``[PAD]`` token, so no row is fully masked."""
        input_ids = torch.zeros(shape, dtype=torch.long, device=device)
        attention_mask = torch.zeros(shape, dtype=torch.long, device=device)
        attention_mask[:, 0] = 1
        buffers = [input_ids, attention_mask, torch.zeros_like(input_ids)]
        current = torch.cuda.current_stream(device)
        self._side = self._side or torch.cuda.Stream(device=device)
        self._side.wait_stream(current)
        graph = torch.cuda.CUDAGraph()
        with _CAPTURE, torch.cuda.stream(self._side):
            for _ in range(WARMUP_RUNS):
                self.model.encode(*buffers)
            # thread-local: work of other threads (other models) during the capture is not an error
            graph.capture_begin(pool=self.pool, capture_error_mode="thread_local")
            try:
                output = self.model.encode(*buffers)
            finally:
                graph.capture_end()
        current.wait_stream(self._side)
        self.pool = graph.pool()
        return buffers, graph, output


def row_bucket(rows: int) -> int:
    """The row count of the graph that serves a batch of ``rows`` rows: the next of 4, 5, 6 or 7 times a
    power of two, at least :data:`MIN_ROWS` (8, 10, 12, 14, 16, 20, ..., 256, 320, ...): at most a fifth
    of the graph's rows are padding beyond the smallest bucket."""
    if rows <= MIN_ROWS:
        return MIN_ROWS
    step = 1 << max(0, (rows - 1).bit_length() - 3)  # a quarter of the power of two below rows
    return -(-rows // step) * step


def _room_for(shape: tuple[int, int], hidden_size: int, device: torch.device) -> bool:
    """Whether one more graph of ``shape`` leaves :data:`FREE_MEMORY_SHARE` of the GPU available (free
    plus what PyTorch holds unused), its buffers counted generously at 4 bytes per value."""
    free, total = torch.cuda.mem_get_info(device)
    available = free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    needed = 4 * shape[0] * shape[1] * (hidden_size + 3)
    return available - needed > FREE_MEMORY_SHARE * total
