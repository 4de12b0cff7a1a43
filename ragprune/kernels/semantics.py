"""What sentence scoring computes: constants, inputs and outputs, shared by every backend.

After the encoder, pruning turns every passage token into a keep probability, reduces the
probabilities per sentence and compares the result with the threshold of the sentence's (query,
passage) pair.  :func:`ragprune.kernels.score_sentences` starts from hidden states and a linear token
head; :func:`ragprune.kernels.reduce_sentences` starts from probabilities that any head produced.
Both backends (``torch_backend``, ``triton_backend``) implement exactly these rules; this module
defines them, checks the inputs and imports neither backend.

Semantics
---------
* Token probability (``score_sentences``): ``p = sigmoid(hidden @ w + b)``, computed in float32
  whatever the input dtype.  ``reduce_sentences`` takes ``p`` as given, rounded to float32.
* Tokens with sentence id ``-1`` (query, special and padding tokens) are ignored.
* Per-sentence accumulation is exact and order independent: each probability is truncated to the
  32.32 fixed-point value ``floor(p * 2**32)`` (:data:`FIXED_POINT_SCALE`; error < 2.4e-10) and summed
  in int64.  Float atomics would make a score depend on the order in which GPU blocks finish, so the
  same input could flip a decision at the threshold from one run to the next; integer sums make every
  backend run-to-run deterministic and more precise than a float32 sum.
* ``reduce="mean"`` (Provence's "sentence rounding": Chirkova et al., *Provence: efficient and robust
  context pruning for retrieval-augmented generation*, ICLR 2025, arXiv:2501.16214): score =
  fixed-point sum / token count.  ``reduce="max"``: score = largest fixed-point probability.  Keep
  when ``score > threshold`` (strict: a score exactly at the threshold is dropped).
* ``reduce="vote"``: each token votes keep when ``p > threshold``; score = share of keep votes; keep
  when ``share >= 0.5``, decided in integers (``2 * votes >= count``).
* A sentence with no tokens has score 0 and is never kept.
* The score's final conversion (int64 -> float32, times 2**-32, IEEE division) is the same float32
  operation sequence on both backends, so equal integer sums give bit-identical scores and decisions.

Equivalence of the backends: the per-token float32 dot product and sigmoid are evaluated in a
different order (and with different ``exp`` implementations) by the Triton kernel and by torch, so a
probability may differ in its last bits.  Decisions are therefore identical wherever the float64
score is more than :data:`DECISION_TOLERANCE` away from the threshold (for ``vote``: wherever no
token probability of the sentence is within it).  From the same probabilities (``reduce_sentences``)
the backends agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "DECISION_TOLERANCE",
    "FIXED_POINT_SCALE",
    "REDUCTIONS",
    "ScoringInputs",
    "SentenceScores",
    "LinearTokenHead",
    "check_index_ranges",
    "prepare_reduction_inputs",
    "prepare_scoring_inputs",
]

REDUCTIONS: tuple[str, ...] = ("mean", "max", "vote")
"""Per-sentence reductions, in the order of their integer codes in the kernels."""

DECISION_TOLERANCE = 1e-5
"""Distance from the threshold (in probability units) beyond which both backends take the same decision."""

FIXED_POINT_SCALE = 4294967296.0
"""2**32: a probability p is accumulated as the int64 ``floor(p * FIXED_POINT_SCALE)``."""

_HIDDEN_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_PROBABILITY_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass
class SentenceScores:
    """Per-sentence scores and keep decisions for a batch of (query, passage) pairs.

    Attributes:
        scores: ``[S]`` float32 on the inputs' device: the reduced keep probability of each sentence
            (``mean``, ``max``) or its share of keep votes (``vote``), in ``[0, 1]``; 0 for a sentence
            without tokens.
        keep: ``[S]`` bool: whether the sentence is kept (see the module docstring for the rule).
    """

    scores: torch.Tensor
    keep: torch.Tensor


@dataclass
class LinearTokenHead:
    """A linear token head over hidden states: ``keep_logit = hidden @ weight + bias``."""

    hidden: torch.Tensor  # [N, H] float16/bfloat16/float32, last dimension contiguous
    weight: torch.Tensor  # [H] floating
    bias: torch.Tensor | float  # a float, or a 1-element float32 tensor on the hidden states' device


@dataclass
class ScoringInputs:
    """Validated, flattened inputs that both backends consume.

    Exactly one of ``head`` (``score_sentences``) and ``probabilities`` (``reduce_sentences``) is set.
    """

    sentence_ids: torch.Tensor  # [N] int32/int64, -1 or a sentence index in [0, S)
    sentence_pair: torch.Tensor  # [S] int32/int64, a pair index in [0, P)
    thresholds: torch.Tensor | float  # a float, a 1-element float32 tensor, or [P] float32
    reduce: str
    num_pairs: int
    head: LinearTokenHead | None = None
    probabilities: torch.Tensor | None = None  # [N] float16/bfloat16/float32/float64

    @property
    def num_tokens(self) -> int:
        return self.sentence_ids.shape[0]

    @property
    def num_sentences(self) -> int:
        return self.sentence_pair.shape[0]

    @property
    def reduce_code(self) -> int:
        return REDUCTIONS.index(self.reduce)

    @property
    def device(self) -> torch.device:
        return self.sentence_ids.device


def prepare_scoring_inputs(
    hidden: torch.Tensor,
    token_weight: torch.Tensor,
    token_bias: torch.Tensor | float,
    sentence_ids: torch.Tensor,
    sentence_pair: torch.Tensor,
    thresholds: torch.Tensor | float,
    reduce: str = "mean",
    num_pairs: int | None = None,
) -> ScoringInputs:
    """Check the inputs of ``score_sentences`` (shapes, dtypes, devices; no synchronisation), flatten them.

    Raises:
        ValueError: naming the offending argument and what it must be.
    """
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
    _check_vector("token_weight", token_weight, hidden.shape[1], hidden.device, floating=True)
    head = LinearTokenHead(
        hidden=hidden,
        weight=token_weight.contiguous(),
        bias=_scalar_or_vector("token_bias", token_bias, None, hidden.device),
    )
    return _reduction_inputs(
        sentence_ids, sentence_pair, thresholds, reduce, num_pairs, hidden.shape[0], hidden.device, head=head
    )


def prepare_reduction_inputs(
    token_probabilities: torch.Tensor,
    sentence_ids: torch.Tensor,
    sentence_pair: torch.Tensor,
    thresholds: torch.Tensor | float,
    reduce: str = "mean",
    num_pairs: int | None = None,
) -> ScoringInputs:
    """Check the inputs of ``reduce_sentences`` (shapes, dtypes, devices; no synchronisation), flatten them.

    Raises:
        ValueError: naming the offending argument and what it must be.
    """
    probabilities = token_probabilities
    if not isinstance(probabilities, torch.Tensor) or probabilities.dtype not in _PROBABILITY_DTYPES:
        got = probabilities.dtype if isinstance(probabilities, torch.Tensor) else type(probabilities).__name__
        raise ValueError(f"token_probabilities must be a floating-point tensor, got {got}")
    if probabilities.dim() == 2:
        if sentence_ids.shape != probabilities.shape:
            raise ValueError(
                f"padded token_probabilities {tuple(probabilities.shape)} need sentence_ids of the same "
                f"shape, got {tuple(sentence_ids.shape)}"
            )
        probabilities = probabilities.reshape(-1)
        sentence_ids = sentence_ids.reshape(-1)
    elif probabilities.dim() != 1:
        raise ValueError(f"token_probabilities must be [N] or [R, L], got shape {tuple(probabilities.shape)}")
    return _reduction_inputs(
        sentence_ids,
        sentence_pair,
        thresholds,
        reduce,
        num_pairs,
        probabilities.shape[0],
        probabilities.device,
        probabilities=probabilities.contiguous(),
    )


def _reduction_inputs(
    sentence_ids: torch.Tensor,
    sentence_pair: torch.Tensor,
    thresholds: torch.Tensor | float,
    reduce: str,
    num_pairs: int | None,
    num_tokens: int,
    device: torch.device,
    *,
    head: LinearTokenHead | None = None,
    probabilities: torch.Tensor | None = None,
) -> ScoringInputs:
    """The checks and the record both entry points share: ids, pairs, thresholds, reduction."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"unknown reduce {reduce!r}; use one of {', '.join(REDUCTIONS)}")
    _check_vector("sentence_ids", sentence_ids, num_tokens, device, floating=False)
    if not isinstance(sentence_pair, torch.Tensor) or sentence_pair.dim() != 1:
        shape = tuple(sentence_pair.shape) if isinstance(sentence_pair, torch.Tensor) else None
        raise ValueError(f"sentence_pair must be a 1-D [S] tensor, got shape {shape}")
    _check_vector("sentence_pair", sentence_pair, sentence_pair.shape[0], device, floating=False)
    known_pairs = {}
    if isinstance(thresholds, torch.Tensor) and thresholds.dim() > 0:
        known_pairs["thresholds"] = thresholds.shape[0] if thresholds.dim() == 1 else -1
    if num_pairs is not None:
        known_pairs["num_pairs"] = num_pairs
    if not known_pairs:
        raise ValueError("the number of pairs is unknown: pass num_pairs or [P] thresholds")
    if len(set(known_pairs.values())) != 1 or min(known_pairs.values()) < 0:
        raise ValueError(f"inconsistent number of pairs: {known_pairs}")
    pairs = next(iter(known_pairs.values()))
    return ScoringInputs(
        sentence_ids=sentence_ids.contiguous(),
        sentence_pair=sentence_pair.contiguous(),
        thresholds=_scalar_or_vector("thresholds", thresholds, pairs, device),
        reduce=reduce,
        num_pairs=pairs,
        head=head,
        probabilities=probabilities,
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
            f"{name} is on {tensor.device} but the token inputs are on {device}; move it with .to({device!r})"
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
            f"{name} is on {value.device} but the token inputs are on {device}; move it with .to({device!r})"
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
    """Refuse ids outside their ranges and probabilities outside ``[0, 1]`` (one device synchronisation).

    Raises:
        ValueError: for a sentence id outside ``[-1, S)``, a pair index outside ``[0, P)``, or a token
            probability that is NaN or outside ``[0, 1]``.
    """
    checks: list[tuple[str, torch.Tensor, float, float]] = [
        ("sentence_ids", inputs.sentence_ids, -1, inputs.num_sentences),
        ("sentence_pair", inputs.sentence_pair, 0, inputs.num_pairs),
    ]
    if inputs.probabilities is not None:
        checks.append(("token_probabilities", inputs.probabilities, 0.0, 1.0))
    nonempty = [(name, values, low, high) for name, values, low, high in checks if values.numel() > 0]
    if not nonempty:
        return
    extremes = torch.stack(
        [torch.stack([values.min(), values.max()]).double() for _, values, _, _ in nonempty]
    ).tolist()
    for (name, _, low, high), (smallest, largest) in zip(nonempty, extremes, strict=True):
        if isinstance(low, float):
            if not (smallest >= low and largest <= high):  # also refuses NaN
                raise ValueError(
                    f"{name} must lie in [0, 1], found values from {smallest} to {largest}; "
                    "pass probabilities (sigmoid of the logits), not logits"
                )
        elif smallest < low or largest >= high:
            raise ValueError(
                f"{name} must lie in [{low}, {high}), found values from {int(smallest)} to {int(largest)}; "
                "ids are global indices into the batch's sentences and pairs"
            )
