"""Token head -> per-sentence keep decisions for a whole ragged batch, in one call.

After the encoder, pruning projects every passage token's hidden state through the token head
(``logit = hidden @ w + b``), turns it into a keep probability (``sigmoid``), reduces the probabilities
per sentence and compares the result with the threshold of the sentence's (query, passage) pair.
:func:`score_sentences` does this for every pair of a batch at once, on the GPU through a Triton
kernel (``ragprune.kernels._triton_sentence_scoring``) or anywhere through plain torch; both backends
implement the semantics defined here.

Semantics (shared by both backends)
-----------------------------------
* Token probability: ``p = sigmoid(hidden @ w + b)``, computed in float32 whatever the input dtype.
* Tokens with sentence id ``-1`` (query, special and padding tokens) are ignored.
* Per-sentence accumulation is exact and order independent: each probability is truncated to the
  32.32 fixed-point value ``floor(p * 2**32)`` (error < 2.4e-10) and summed in int64.  Float atomics
  would make a score depend on the order in which GPU blocks finish, so the same input could flip a
  decision at the threshold from one run to the next; integer sums make every backend run-to-run
  deterministic and more precise than a float32 sum.
* ``reduce="mean"`` (Provence's sentence rounding): score = fixed-point sum / token count.
  ``reduce="max"``: score = largest fixed-point probability.  Keep when ``score > threshold``
  (strict: a score exactly at the threshold is dropped).
* ``reduce="vote"``: each token votes keep when ``p > threshold``; score = share of keep votes;
  keep when ``share >= 0.5``, decided in integers (``2 * votes >= count``).
* A sentence with no tokens has score 0 and is never kept.
* ``kept_tokens[pair]`` counts the tokens of the pair's kept sentences.
* The score's final conversion (int64 -> float32, times 2**-32, IEEE division) is the same float32
  operation sequence on both backends, so equal integer sums give bit-identical scores and decisions.

Equivalence of the backends: the per-token float32 dot product and sigmoid are evaluated in a
different order (and with different ``exp`` implementations) by the Triton kernel and by torch, so a
probability may differ in its last bits.  Decisions are therefore identical wherever the float64
score is more than :data:`DECISION_TOLERANCE` away from the threshold (for ``vote``: wherever no
token probability of the sentence is within it); the tests check exactly this.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache

import torch

__all__ = ["DECISION_TOLERANCE", "REDUCTIONS", "SentenceScores", "score_sentences"]

REDUCTIONS: tuple[str, ...] = ("mean", "max", "vote")
"""Per-sentence reductions, in the order of their integer codes in the kernels."""

DECISION_TOLERANCE = 1e-5
"""Distance from the threshold beyond which both backends must take the same decision."""

FIXED_POINT_SCALE = 4294967296.0
"""2**32: a probability p is accumulated as the int64 ``floor(p * FIXED_POINT_SCALE)``."""

_HIDDEN_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_PROJECTION_CHUNK_ELEMENTS = 1 << 26  # torch path: upcast at most this many hidden values at a time


@dataclass
class SentenceScores:
    """Per-sentence scores and decisions for a batch of (query, passage) pairs."""

    scores: torch.Tensor  # [S] float32, reduced keep probability per sentence (0 for empty sentences)
    keep: torch.Tensor  # [S] bool
    kept_tokens: torch.Tensor  # [P] int64, tokens of kept sentences per pair
    rank_logits: torch.Tensor | None  # [P] float32 when a rank head was given


@dataclass
class ScoringInputs:
    """Validated, flattened inputs that both backends consume."""

    hidden: torch.Tensor  # [N, H], last dimension contiguous
    token_weight: torch.Tensor  # [H]
    token_bias: torch.Tensor | float  # float, or a 1-element tensor on the hidden states' device
    sentence_ids: torch.Tensor  # [N] int32/int64
    sentence_pair: torch.Tensor  # [S] int32/int64
    thresholds: torch.Tensor | float  # float, or [P] float32
    reduce: str
    num_pairs: int
    rank_rows: torch.Tensor | None  # [P] int
    rank_weight: torch.Tensor | None  # [H]
    rank_bias: torch.Tensor | float

    @property
    def num_sentences(self) -> int:
        return self.sentence_pair.shape[0]

    @property
    def reduce_code(self) -> int:
        return REDUCTIONS.index(self.reduce)


def score_sentences(
    hidden: torch.Tensor,
    token_weight: torch.Tensor,
    token_bias: torch.Tensor | float,
    sentence_ids: torch.Tensor,
    sentence_pair: torch.Tensor,
    thresholds: torch.Tensor | float,
    reduce: str = "mean",
    rank_rows: torch.Tensor | None = None,
    rank_weight: torch.Tensor | None = None,
    rank_bias: torch.Tensor | float | None = None,
    backend: str = "auto",
    *,
    num_pairs: int | None = None,
    validate: bool = True,
) -> SentenceScores:
    """Score and threshold every sentence of a ragged batch through the token head.

    Args:
        hidden: ``[N, H]`` packed token states or ``[B, L, H]`` padded ones (flattened to ``[B*L, H]``),
            float16, bfloat16 or float32.
        token_weight, token_bias: the token head, ``keep_logit = hidden @ token_weight + token_bias``.
        sentence_ids: ``[N]`` or ``[B, L]`` global sentence index in ``[0, S)`` of each token, ``-1`` to
            ignore it.  A sentence may occupy several token ranges (a sentence split across chunks).
        sentence_pair: ``[S]`` pair index in ``[0, P)`` of each sentence.
        thresholds: ``[P]`` per-pair thresholds, or one number for all pairs.
        reduce: ``"mean"``, ``"max"`` or ``"vote"`` (see the module docstring).
        rank_rows, rank_weight, rank_bias: optional rank head read at row ``rank_rows[p]`` (the ``[CLS]``
            row of pair ``p`` in the flattened tokens); gives ``rank_logits``.
        backend: ``"triton"``, ``"torch"`` or ``"auto"`` (Triton when ``hidden`` is on CUDA and Triton
            is installed, torch otherwise).  Both give identical decisions away from the threshold.
        num_pairs: ``P``; needed only when neither ``thresholds`` nor ``rank_rows`` has length ``P``.
        validate: check index ranges; costs one device synchronisation, so callers that build the ids
            themselves may switch it off (the Triton kernel never writes outside its buffers either way).
    """
    inputs = prepare_inputs(
        hidden,
        token_weight,
        token_bias,
        sentence_ids,
        sentence_pair,
        thresholds,
        reduce,
        rank_rows,
        rank_weight,
        rank_bias,
        num_pairs,
    )
    chosen = resolve_backend(backend, inputs.hidden)
    if validate:
        check_index_ranges(inputs)
    if chosen == "triton":
        from ragprune.kernels import _triton_sentence_scoring

        return _triton_sentence_scoring.score_sentences_triton(inputs)
    return score_sentences_torch(inputs)


@lru_cache(maxsize=1)
def triton_available() -> bool:
    """Whether the Triton package can be imported (checked without importing it)."""
    return importlib.util.find_spec("triton") is not None


def resolve_backend(backend: str, hidden: torch.Tensor) -> str:
    """The backend ``score_sentences`` runs for ``backend`` and the device of ``hidden``."""
    if backend == "auto":
        return "triton" if hidden.is_cuda and triton_available() else "torch"
    if backend == "torch":
        return backend
    if backend == "triton":
        if not triton_available():
            raise ValueError("backend='triton' needs the triton package; install it or use backend='torch'")
        if not hidden.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(
                f"backend='triton' needs CUDA tensors, got hidden on {hidden.device}; use backend='torch' "
                "(or set TRITON_INTERPRET=1 before importing triton to run the kernel in its CPU interpreter)"
            )
        return backend
    raise ValueError(f"unknown backend {backend!r}; use 'auto', 'triton' or 'torch'")


def prepare_inputs(
    hidden: torch.Tensor,
    token_weight: torch.Tensor,
    token_bias: torch.Tensor | float,
    sentence_ids: torch.Tensor,
    sentence_pair: torch.Tensor,
    thresholds: torch.Tensor | float,
    reduce: str = "mean",
    rank_rows: torch.Tensor | None = None,
    rank_weight: torch.Tensor | None = None,
    rank_bias: torch.Tensor | float | None = None,
    num_pairs: int | None = None,
) -> ScoringInputs:
    """Check shapes and dtypes (no device synchronisation) and flatten padded inputs."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"unknown reduce {reduce!r}; use one of {', '.join(REDUCTIONS)}")
    if hidden.dtype not in _HIDDEN_DTYPES:
        raise ValueError(f"hidden must be float16, bfloat16 or float32, got {hidden.dtype}")
    if hidden.dim() == 3:
        if sentence_ids.shape != hidden.shape[:2]:
            raise ValueError(
                f"padded hidden {tuple(hidden.shape)} needs sentence_ids of shape {tuple(hidden.shape[:2])}, "
                f"got {tuple(sentence_ids.shape)}"
            )
        hidden = hidden.reshape(-1, hidden.shape[-1])
        sentence_ids = sentence_ids.reshape(-1)
    elif hidden.dim() != 2:
        raise ValueError(f"hidden must be [N, H] or [B, L, H], got shape {tuple(hidden.shape)}")
    if hidden.stride(-1) != 1:
        hidden = hidden.contiguous()
    device = hidden.device
    num_tokens, width = hidden.shape
    _check_vector("token_weight", token_weight, width, device, floating=True)
    _check_vector("sentence_ids", sentence_ids, num_tokens, device, floating=False)
    if sentence_pair.dim() != 1:
        raise ValueError(f"sentence_pair must be 1-D [S], got shape {tuple(sentence_pair.shape)}")
    _check_vector("sentence_pair", sentence_pair, sentence_pair.shape[0], device, floating=False)

    known_pairs = {}
    if isinstance(thresholds, torch.Tensor) and thresholds.dim() > 0:
        known_pairs["thresholds"] = thresholds.shape[0] if thresholds.dim() == 1 else -1
    if rank_rows is not None:
        known_pairs["rank_rows"] = rank_rows.shape[0] if rank_rows.dim() == 1 else -1
    if num_pairs is not None:
        known_pairs["num_pairs"] = num_pairs
    if not known_pairs:
        raise ValueError("the number of pairs is unknown: pass num_pairs, [P] thresholds or rank_rows")
    if len(set(known_pairs.values())) != 1 or min(known_pairs.values()) < 0:
        raise ValueError(f"inconsistent number of pairs: {known_pairs}")
    pairs = next(iter(known_pairs.values()))

    thresholds = _scalar_or_vector("thresholds", thresholds, pairs, device)
    token_bias = _scalar_or_vector("token_bias", token_bias, None, device)
    if (rank_rows is None) != (rank_weight is None):
        raise ValueError("rank_rows and rank_weight go together: pass both or neither")
    if rank_rows is not None:
        _check_vector("rank_rows", rank_rows, pairs, device, floating=False)
        _check_vector("rank_weight", rank_weight, width, device, floating=True)
        rank_bias = _scalar_or_vector("rank_bias", 0.0 if rank_bias is None else rank_bias, None, device)
    return ScoringInputs(
        hidden=hidden,
        token_weight=token_weight.contiguous(),
        token_bias=token_bias,
        sentence_ids=sentence_ids.contiguous(),
        sentence_pair=sentence_pair.contiguous(),
        thresholds=thresholds,
        reduce=reduce,
        num_pairs=pairs,
        rank_rows=None if rank_rows is None else rank_rows.contiguous(),
        rank_weight=None if rank_weight is None else rank_weight.contiguous(),
        rank_bias=0.0 if rank_bias is None else rank_bias,
    )


def _check_vector(
    name: str, tensor: torch.Tensor, length: int, device: torch.device, *, floating: bool
) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {tuple(tensor.shape)}")
    if tensor.device != device:
        raise ValueError(
            f"{name} is on {tensor.device} but hidden is on {device}; move it with .to(hidden.device)"
        )
    if floating and not tensor.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {tensor.dtype}")
    if not floating and tensor.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{name} must be int32 or int64, got {tensor.dtype}")


def _scalar_or_vector(
    name: str, value: torch.Tensor | float, length: int | None, device: torch.device
) -> torch.Tensor | float:
    """A number stays a float; a 0-d tensor becomes a 1-element float32 tensor; a 1-D one must be [length]."""
    if not isinstance(value, torch.Tensor):
        return float(value)
    if value.device != device:
        raise ValueError(
            f"{name} is on {value.device} but hidden is on {device}; move it with .to(hidden.device)"
        )
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {value.dtype}")
    if value.dim() == 0:
        return value.reshape(1).to(torch.float32)
    if length is not None and value.shape == (length,):
        return value.to(torch.float32).contiguous()
    expected = "0-d" if length is None else f"0-d or of shape ({length},)"
    raise ValueError(f"{name} must be a number or a tensor {expected}, got shape {tuple(value.shape)}")


def check_index_ranges(inputs: ScoringInputs) -> None:
    """Raise ValueError for ids outside their ranges (one device synchronisation)."""
    num_tokens = inputs.hidden.shape[0]
    checks = [
        ("sentence_ids", inputs.sentence_ids, -1, inputs.num_sentences),
        ("sentence_pair", inputs.sentence_pair, 0, inputs.num_pairs),
    ]
    if inputs.rank_rows is not None:
        checks.append(("rank_rows", inputs.rank_rows, 0, num_tokens))
    nonempty = [(name, ids, low, high) for name, ids, low, high in checks if ids.numel() > 0]
    if not nonempty:
        return
    extremes = torch.stack([torch.stack([ids.min(), ids.max()]).long() for _, ids, _, _ in nonempty]).tolist()
    for (name, _, low, high), (smallest, largest) in zip(nonempty, extremes, strict=True):
        if smallest < low or largest >= high:
            raise ValueError(
                f"{name} must lie in [{low}, {high}), found values from {smallest} to {largest}; "
                "ids are global indices into the batch's sentences, pairs or flattened tokens"
            )


def threshold_per_sentence(inputs: ScoringInputs, pair: torch.Tensor) -> torch.Tensor | float:
    """The threshold of each pair index in ``pair`` (broadcastable when all pairs share one)."""
    if isinstance(inputs.thresholds, float) or inputs.thresholds.numel() == 1:
        return inputs.thresholds
    return inputs.thresholds[pair.long()]


def token_probabilities_torch(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | float
) -> torch.Tensor:
    """``sigmoid(hidden @ weight + bias)`` in float32, upcasting the hidden states chunk by chunk."""
    weight = weight.to(torch.float32)
    logits = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    rows_per_chunk = max(1, _PROJECTION_CHUNK_ELEMENTS // max(1, hidden.shape[1]))
    for start in range(0, hidden.shape[0], rows_per_chunk):
        chunk = hidden[start : start + rows_per_chunk].to(torch.float32)
        torch.mv(chunk, weight, out=logits[start : start + rows_per_chunk])
    return torch.sigmoid(logits + bias)


def to_fixed_point(probabilities: torch.Tensor) -> torch.Tensor:
    """``floor(p * 2**32)`` as int64 (probabilities are non-negative, so truncation is the floor)."""
    return (probabilities * FIXED_POINT_SCALE).to(torch.int64)


def finalize_torch(
    values: torch.Tensor, counts: torch.Tensor, thresholds: torch.Tensor | float, reduce: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and keep flags from per-sentence integer accumulators (same float32 steps as the kernel)."""
    denominators = counts.clamp(min=1).to(torch.float32)
    nonempty = counts > 0
    if reduce == "vote":
        return values.to(torch.float32) / denominators, nonempty & (2 * values >= counts)
    scores = values.to(torch.float32) * (1.0 / FIXED_POINT_SCALE)
    if reduce == "mean":
        scores = scores / denominators
    return scores, nonempty & (scores > thresholds)


def score_sentences_torch(inputs: ScoringInputs) -> SentenceScores:
    """The torch backend: runs on any device, a handful of vectorised ops for the whole batch."""
    probabilities = token_probabilities_torch(inputs.hidden, inputs.token_weight, inputs.token_bias)
    active = inputs.sentence_ids >= 0
    sentence = inputs.sentence_ids[active].long()
    probabilities = probabilities[active]
    num_sentences = inputs.num_sentences
    device = inputs.hidden.device
    counts = torch.bincount(sentence, minlength=num_sentences)
    values = torch.zeros(num_sentences, dtype=torch.int64, device=device)
    if inputs.reduce == "mean":
        values.index_add_(0, sentence, to_fixed_point(probabilities))
    elif inputs.reduce == "max":
        values.scatter_reduce_(0, sentence, to_fixed_point(probabilities), reduce="amax")
    else:
        token_threshold = threshold_per_sentence(inputs, inputs.sentence_pair[sentence])
        values.index_add_(0, sentence, (probabilities > token_threshold).to(torch.int64))
    scores, keep = finalize_torch(
        values, counts, threshold_per_sentence(inputs, inputs.sentence_pair), inputs.reduce
    )
    kept_tokens = torch.zeros(inputs.num_pairs, dtype=torch.int64, device=device)
    kept_tokens.index_add_(0, inputs.sentence_pair.long(), counts * keep)
    rank_logits = None
    if inputs.rank_rows is not None:
        rows = inputs.hidden[inputs.rank_rows.long()].to(torch.float32)
        rank_logits = torch.mv(rows, inputs.rank_weight.to(torch.float32)) + inputs.rank_bias
    return SentenceScores(scores=scores, keep=keep, kept_tokens=kept_tokens, rank_logits=rank_logits)
