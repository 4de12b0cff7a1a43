"""Triton backend of sentence scoring (imported only when that backend runs; see kernels/NOTES.md).

Implements :mod:`ragprune.kernels.semantics`.  From hidden states the work is bound by reading the
``[N, H]`` hidden states once, so everything else rides along:

* launch 1, ``_token_pass_kernel``: each program reads ``BLOCK_T`` token rows (skipping rows whose
  sentence id is ``-1``: their bytes are never fetched), computes the token-head logits with a
  float32 dot product, the sigmoid, and the 32.32 fixed-point value of each token.  Runs of equal
  sentence ids inside the block are pre-reduced with a segmented scan, so only the last token of each
  run issues the int64 atomics into the per-sentence accumulators (about one atomic per sentence per
  block instead of one per token).  Integer atomics are order independent, so results are
  bit-for-bit reproducible.  With ``PROBABILITIES`` (``reduce_sentences``) the program loads each
  token's given probability instead of computing it; the rest of the pass is the same.
* launch 2, ``_sentence_pass_kernel``: one thread per sentence turns the integer sums into the
  score and keep flag.

Two launches because a sentence's total is complete only after every token block has finished: a
grid-wide dependency.  Folding the second pass into the first (a last-block-done counter) would save
one launch of a few microseconds against a first pass of hundreds, at the price of a serial tail.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ragprune.kernels.semantics import FIXED_POINT_SCALE, ScoringInputs, SentenceScores

__all__ = ["KernelConfig", "default_config", "run"]

_SCALE: tl.constexpr = tl.constexpr(FIXED_POINT_SCALE)
_INVERSE_SCALE: tl.constexpr = tl.constexpr(1.0 / FIXED_POINT_SCALE)

# How a scalar-or-tensor argument reaches the kernel.
_BY_VALUE, _ONE_ELEMENT, _PER_PAIR = 0, 1, 2


@dataclass(frozen=True)
class KernelConfig:
    """Launch parameters of the two kernels (the benchmark sweeps them)."""

    block_tokens: int = 64
    block_hidden: int = 64
    num_warps: int = 4
    num_stages: int = 3
    segment_scan: bool = True  # pre-reduce runs of equal ids before the atomics (else one atomic per token)
    block_sentences: int = 1024


def default_config(hidden_size: int) -> KernelConfig:
    """The configuration used when none is given (see kernels/NOTES.md for how it was chosen)."""
    return KernelConfig(block_hidden=min(64, triton.next_power_of_2(max(hidden_size, 16))))


@triton.jit
def _rows_dot(
    hidden_ptr,
    row_offsets,
    row_mask,
    weight_ptr,
    H,
    BLOCK_T: tl.constexpr,
    BLOCK_H: tl.constexpr,
    EVEN_H: tl.constexpr,
):
    """Float32 dot product of ``BLOCK_T`` hidden rows with the weight vector; masked rows read nothing."""
    columns = tl.arange(0, BLOCK_H)
    total = tl.zeros([BLOCK_T, BLOCK_H], dtype=tl.float32)
    for start in range(0, H, BLOCK_H):
        h = start + columns
        if EVEN_H:
            x = tl.load(
                hidden_ptr + row_offsets[:, None] + h[None, :],
                mask=row_mask[:, None],
                other=0.0,
                eviction_policy="evict_first",
            )
            w = tl.load(weight_ptr + h)
        else:
            x = tl.load(
                hidden_ptr + row_offsets[:, None] + h[None, :],
                mask=row_mask[:, None] & (h < H)[None, :],
                other=0.0,
                eviction_policy="evict_first",
            )
            w = tl.load(weight_ptr + h, mask=h < H, other=0.0)
        total += x.to(tl.float32) * w.to(tl.float32)[None, :]
    return tl.sum(total, axis=1)


@triton.jit
def _load_scalar(ptr, value, MODE: tl.constexpr):
    if MODE == 0:
        return value
    return tl.load(ptr).to(tl.float32)


@triton.jit
def _segmented_sum(start_a, value_a, count_a, start_b, value_b, count_b):
    restart = start_b != 0
    return (
        start_a | start_b,
        tl.where(restart, value_b, value_a + value_b),
        tl.where(restart, count_b, count_a + count_b),
    )


@triton.jit
def _segmented_max(start_a, value_a, count_a, start_b, value_b, count_b):
    restart = start_b != 0
    return (
        start_a | start_b,
        tl.where(restart, value_b, tl.maximum(value_a, value_b)),
        tl.where(restart, count_b, count_a + count_b),
    )


# Sizes vary with every batch: specialising on them (divisibility by 16, == 1) would recompile the
# kernels for new variants in the middle of a run.
@triton.jit(do_not_specialize=["N", "S"])
def _token_pass_kernel(
    hidden_ptr,
    row_stride,
    weight_ptr,
    bias_ptr,
    bias_value,
    probability_ptr,
    sentence_ptr,
    pair_ptr,
    threshold_ptr,
    threshold_value,
    value_ptr,
    count_ptr,
    N,
    H,
    S,
    REDUCE: tl.constexpr,
    PROBABILITIES: tl.constexpr,
    BIAS_MODE: tl.constexpr,
    THRESHOLD_MODE: tl.constexpr,
    SEGMENT_SCAN: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_H: tl.constexpr,
    EVEN_H: tl.constexpr,
):
    lanes = tl.arange(0, BLOCK_T)
    rows = tl.program_id(0).to(tl.int64) * BLOCK_T + lanes
    in_range = rows < N
    sentence = tl.load(sentence_ptr + rows, mask=in_range, other=-1)
    # Ids >= S are refused by validation; masking them here keeps every atomic inside its buffer.
    active = (sentence >= 0) & (sentence < S)
    if PROBABILITIES:
        probability = tl.load(probability_ptr + rows, mask=active, other=0.0).to(tl.float32)
    else:
        logits = _rows_dot(hidden_ptr, rows * row_stride, active, weight_ptr, H, BLOCK_T, BLOCK_H, EVEN_H)
        probability = tl.sigmoid(logits + _load_scalar(bias_ptr, bias_value, BIAS_MODE))
    target = tl.where(active, sentence, 0)
    if REDUCE == 2:
        if THRESHOLD_MODE == 2:
            pair = tl.load(pair_ptr + target, mask=active, other=0)
            threshold = tl.load(threshold_ptr + pair, mask=active, other=0.0)
        else:
            threshold = _load_scalar(threshold_ptr, threshold_value, THRESHOLD_MODE)
        value = (active & (probability > threshold)).to(tl.int64)
    else:
        value = tl.where(active, (probability * _SCALE).to(tl.int64), 0)
    count = active.to(tl.int64)
    if SEGMENT_SCAN:
        # Neighbours outside the block read as -1, so runs are cut at the block's edges.
        previous = tl.load(sentence_ptr + rows - 1, mask=in_range & (lanes > 0), other=-1)
        following = tl.load(sentence_ptr + rows + 1, mask=(rows + 1 < N) & (lanes < BLOCK_T - 1), other=-1)
        starts = (previous != sentence).to(tl.int32)
        if REDUCE == 1:
            _, value, count = tl.associative_scan((starts, value, count), 0, _segmented_max)
        else:
            _, value, count = tl.associative_scan((starts, value, count), 0, _segmented_sum)
        writes = active & (following != sentence)
    else:
        writes = active
    if REDUCE == 1:
        tl.atomic_max(value_ptr + target, value, mask=writes, sem="relaxed")
    else:
        tl.atomic_add(value_ptr + target, value, mask=writes, sem="relaxed")
    tl.atomic_add(count_ptr + target, count, mask=writes, sem="relaxed")


@triton.jit(do_not_specialize=["S"])
def _sentence_pass_kernel(
    value_ptr,
    count_ptr,
    pair_ptr,
    threshold_ptr,
    threshold_value,
    score_ptr,
    keep_ptr,
    S,
    REDUCE: tl.constexpr,
    THRESHOLD_MODE: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    sentences = tl.program_id(0) * BLOCK_S + tl.arange(0, BLOCK_S)
    in_range = sentences < S
    value = tl.load(value_ptr + sentences, mask=in_range, other=0)
    count = tl.load(count_ptr + sentences, mask=in_range, other=0)
    denominator = tl.maximum(count, 1).to(tl.float32)
    nonempty = count > 0
    if REDUCE == 2:
        score = tl.math.div_rn(value.to(tl.float32), denominator)
        keep = nonempty & (2 * value >= count)
    else:
        score = value.to(tl.float32) * _INVERSE_SCALE
        if REDUCE == 0:
            score = tl.math.div_rn(score, denominator)
        if THRESHOLD_MODE == 2:
            pair = tl.load(pair_ptr + sentences, mask=in_range, other=0)
            threshold = tl.load(threshold_ptr + pair, mask=in_range, other=0.0)
        else:
            threshold = _load_scalar(threshold_ptr, threshold_value, THRESHOLD_MODE)
        keep = nonempty & (score > threshold)
    tl.store(score_ptr + sentences, score, mask=in_range)
    tl.store(keep_ptr + sentences, keep, mask=in_range)


def _by_value_or_pointer(value: torch.Tensor | float, dummy: torch.Tensor) -> tuple[int, torch.Tensor, float]:
    """(mode, pointer argument, value argument) for a number, a 1-element tensor or a [P] tensor."""
    if isinstance(value, float):
        return _BY_VALUE, dummy, value
    return (_ONE_ELEMENT if value.numel() == 1 else _PER_PAIR), value, 0.0


def run(
    inputs: ScoringInputs, config: KernelConfig | None = None, out: SentenceScores | None = None
) -> SentenceScores:
    """Run the two kernels on validated inputs of either entry point (CUDA tensors, or CPU ones under
    ``TRITON_INTERPRET=1``).

    ``config`` defaults to :func:`default_config` of the hidden size; ``out`` lets a check pass
    pre-filled (poisoned) ``scores`` and ``keep`` buffers to prove every element gets written.
    """
    head = inputs.head
    num_tokens, num_sentences = inputs.num_tokens, inputs.num_sentences
    device = inputs.device
    config = config or default_config(head.hidden.shape[1] if head is not None else 1)
    # separate buffers keep every pointer 16-byte aligned whatever the sizes (no alignment recompiles)
    values = torch.zeros(num_sentences, dtype=torch.int64, device=device)
    counts = torch.zeros(num_sentences, dtype=torch.int64, device=device)
    if out is None:
        scores = torch.empty(num_sentences, dtype=torch.float32, device=device)
        keep = torch.empty(num_sentences, dtype=torch.bool, device=device)
    else:
        scores, keep = out.scores, out.keep
    threshold_mode, threshold_ptr, threshold_value = _by_value_or_pointer(inputs.thresholds, scores)
    if num_sentences == 0:
        return SentenceScores(scores=scores, keep=keep)
    if head is not None:
        hidden, width, weight = head.hidden, head.hidden.shape[1], head.weight
        bias_mode, bias_ptr, bias_value = _by_value_or_pointer(head.bias, weight)
        probabilities = scores  # unread without PROBABILITIES
    else:  # the hidden-state arguments are unread with PROBABILITIES
        assert inputs.probabilities is not None  # ScoringInputs: exactly one of head / probabilities
        probabilities = inputs.probabilities
        hidden, width, weight = probabilities, 1, probabilities
        bias_mode, bias_ptr, bias_value = _BY_VALUE, probabilities, 0.0
    token_blocks = triton.cdiv(num_tokens, config.block_tokens)
    if token_blocks > 0:
        _token_pass_kernel[(token_blocks,)](
            hidden,
            hidden.stride(0),
            weight,
            bias_ptr,
            bias_value,
            probabilities,
            inputs.sentence_ids,
            inputs.sentence_pair,
            threshold_ptr,
            threshold_value,
            values,
            counts,
            num_tokens,
            width,
            num_sentences,
            REDUCE=inputs.reduce_code,
            PROBABILITIES=head is None,
            BIAS_MODE=bias_mode,
            THRESHOLD_MODE=threshold_mode,
            SEGMENT_SCAN=config.segment_scan,
            BLOCK_T=config.block_tokens,
            BLOCK_H=config.block_hidden,
            EVEN_H=width % config.block_hidden == 0,
            num_warps=config.num_warps,
            num_stages=config.num_stages,
        )
    _sentence_pass_kernel[(triton.cdiv(num_sentences, config.block_sentences),)](
        values,
        counts,
        inputs.sentence_pair,
        threshold_ptr,
        threshold_value,
        scores,
        keep,
        num_sentences,
        REDUCE=inputs.reduce_code,
        THRESHOLD_MODE=threshold_mode,
        BLOCK_S=config.block_sentences,
        num_warps=4,
    )
    return SentenceScores(scores=scores, keep=keep)
