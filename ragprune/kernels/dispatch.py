"""The entry points: check the inputs, pick a backend, run it.

:func:`score_sentences` starts from hidden states and a linear token head; :func:`reduce_sentences`
from token probabilities that any head (e.g. a non-linear one) produced.  Both return
:class:`~ragprune.kernels.semantics.SentenceScores` under the rules of :mod:`ragprune.kernels.semantics`.
The Triton backend is imported only when it runs, so importing this module costs no more than torch.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

import torch

from ragprune.kernels import torch_backend
from ragprune.kernels.semantics import (
    ScoringInputs,
    SentenceScores,
    check_index_ranges,
    prepare_reduction_inputs,
    prepare_scoring_inputs,
)

__all__ = ["reduce_sentences", "resolve_backend", "score_sentences", "triton_available"]


def score_sentences(
    hidden: torch.Tensor,
    token_weight: torch.Tensor,
    token_bias: torch.Tensor | float,
    sentence_ids: torch.Tensor,
    sentence_pair: torch.Tensor,
    thresholds: torch.Tensor | float,
    reduce: str = "mean",
    backend: str = "auto",
    *,
    num_pairs: int | None = None,
    validate: bool = True,
) -> SentenceScores:
    """Score and threshold every sentence of a ragged batch through a linear token head.

    Token probability ``p = sigmoid(hidden @ token_weight + token_bias)`` in float32, then the
    per-sentence reduction of :func:`reduce_sentences` (Provence's sentence rounding for ``"mean"``).

    Args:
        hidden: ``[N, H]`` packed token states or ``[B, L, H]`` padded ones (flattened to ``[B*L, H]``),
            float16, bfloat16 or float32.
        token_weight: ``[H]`` floating weight of the token head, on the device of ``hidden``.
        token_bias: the head's bias (logit units): a number or a 0-d floating tensor on that device.
        sentence_ids: ``[N]`` or ``[B, L]`` int32/int64 global sentence index in ``[0, S)`` of each
            token, ``-1`` to ignore it.  A sentence may occupy several token ranges (a sentence split
            across chunks).
        sentence_pair: ``[S]`` int32/int64 pair index in ``[0, P)`` of each sentence.
        thresholds: keep threshold in probability units: ``[P]`` floating per-pair thresholds, or one
            number (or 0-d tensor) for all pairs.
        reduce: ``"mean"``, ``"max"`` or ``"vote"`` (see :mod:`ragprune.kernels.semantics`).
        backend: ``"triton"``, ``"torch"`` or ``"auto"`` (Triton when ``hidden`` is on CUDA and Triton
            is installed, torch otherwise).  Both give identical decisions wherever the float64 score
            is more than ``DECISION_TOLERANCE`` from the threshold.
        num_pairs: ``P``; needed only when ``thresholds`` is not a ``[P]`` tensor.
        validate: check index ranges; costs one device synchronisation, so callers that build the ids
            themselves may switch it off (the Triton kernel never writes outside its buffers either way).

    Returns:
        :class:`SentenceScores`: ``[S]`` float32 scores and ``[S]`` bool keep flags on the device of
        ``hidden``.

    Raises:
        ValueError: for a wrong shape, dtype, device, reduction or backend, an unknown number of
            pairs, and (with ``validate``) ids outside their ranges.
    """
    inputs = prepare_scoring_inputs(
        hidden, token_weight, token_bias, sentence_ids, sentence_pair, thresholds, reduce, num_pairs
    )
    return _run(inputs, backend, validate)


def reduce_sentences(
    token_probabilities: torch.Tensor,
    sentence_ids: torch.Tensor,
    sentence_pair: torch.Tensor,
    thresholds: torch.Tensor | float,
    reduce: str = "mean",
    backend: str = "auto",
    *,
    num_pairs: int | None = None,
    validate: bool = True,
) -> SentenceScores:
    """Reduce given token keep probabilities per sentence and threshold them (for any token head).

    The reduction of :func:`score_sentences` without its linear head: each probability (rounded to
    float32) is accumulated as the int64 fixed-point value ``floor(p * 2**32)``; ``"mean"`` divides
    the sum by the token count (Provence's sentence rounding, Chirkova et al. 2025, arXiv:2501.16214),
    ``"max"`` takes the largest value, both keep when ``score > threshold``; ``"vote"`` keeps when at
    least half the tokens have ``p > threshold``.  Given ``sigmoid(hidden @ w + b)`` as computed by the
    torch backend, the torch backend returns bit for bit what ``score_sentences`` returns.

    Args:
        token_probabilities: ``[N]`` packed or ``[R, L]`` padded keep probabilities in ``[0, 1]``,
            float16, bfloat16, float32 or float64.
        sentence_ids: int32/int64 of the same shape: global sentence index in ``[0, S)`` of each
            token, ``-1`` to ignore it.
        sentence_pair: ``[S]`` int32/int64 pair index in ``[0, P)`` of each sentence.
        thresholds: ``[P]`` floating per-pair thresholds (probability units), or one number (or 0-d
            tensor) for all pairs.
        reduce: ``"mean"``, ``"max"`` or ``"vote"``.
        backend: ``"triton"``, ``"torch"`` or ``"auto"`` (Triton on CUDA when installed).  From the
            same probabilities the backends agree bit for bit.
        num_pairs: ``P``; needed only when ``thresholds`` is not a ``[P]`` tensor.
        validate: check index ranges and that every probability lies in ``[0, 1]`` (one device
            synchronisation).

    Returns:
        :class:`SentenceScores`: ``[S]`` float32 scores and ``[S]`` bool keep flags.

    Raises:
        ValueError: for a wrong shape, dtype, device, reduction or backend, an unknown number of
            pairs, and (with ``validate``) ids out of range or probabilities outside ``[0, 1]``.
    """
    inputs = prepare_reduction_inputs(
        token_probabilities, sentence_ids, sentence_pair, thresholds, reduce, num_pairs
    )
    return _run(inputs, backend, validate)


def _run(inputs: ScoringInputs, backend: str, validate: bool) -> SentenceScores:
    chosen = resolve_backend(backend, inputs.sentence_ids)
    if validate:
        check_index_ranges(inputs)
    if chosen == "triton":
        from ragprune.kernels import triton_backend

        return triton_backend.run(inputs)
    return torch_backend.run(inputs)


@lru_cache(maxsize=1)
def triton_available() -> bool:
    """Whether the Triton package can be imported (checked without importing it)."""
    return importlib.util.find_spec("triton") is not None


def resolve_backend(backend: str, tensor: torch.Tensor) -> str:
    """The backend (``"triton"`` or ``"torch"``) that ``backend`` means for inputs on ``tensor``'s device.

    Raises:
        ValueError: for an unknown name, or ``"triton"`` without the package or without CUDA tensors
            (unless ``TRITON_INTERPRET=1`` runs the kernels in Triton's CPU interpreter).
    """
    if backend == "auto":
        return "triton" if tensor.is_cuda and triton_available() else "torch"
    if backend == "torch":
        return backend
    if backend == "triton":
        if not triton_available():
            raise ValueError("backend='triton' needs the triton package; install it or use backend='torch'")
        if not tensor.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(
                f"backend='triton' needs CUDA tensors, got inputs on {tensor.device}; use backend='torch' "
                "(or set TRITON_INTERPRET=1 before importing triton to run the kernel in its CPU interpreter)"
            )
        return backend
    raise ValueError(f"unknown backend {backend!r}; use 'auto', 'triton' or 'torch'")
