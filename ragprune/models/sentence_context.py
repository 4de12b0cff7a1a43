"""A sentence's keep probability read against the best sentence of its passage.

The token head scores each sentence on its own; the sentence probability it yields (the mean token
probability, Provence's sentence rounding) carries the passage's relevance and its dataset's base rate
with it. In a SciFact abstract every sentence is on topic, so its non-gold sentences sit high; in a
WikiQA passage they sit low, and no one threshold serves both (``training/README.md``, sessions 14 and 16).
The sentence-context layer maps each sentence's probability ``p_i`` to

    p'_i = sigmoid(weight * z_i + relative_weight * (z_i - max_j z_j) + bias),   z_i = logit(p_i)

where ``j`` runs over the sentences of the same (query, passage) pair. The best sentence of a passage
keeps ``sigmoid(weight * z + bias)``, so an irrelevant passage's scores do not rise; a sentence far below
its passage's best one falls further. No position enters, and within a passage the order of the scores
is unchanged (the map is increasing in ``z_i`` for ``weight + relative_weight > 0``). The three numbers
are fitted on held-out training questions (``ragprune.training.calibration.fit_sentence_context``) and
then read as a calibrated probability, like the threshold they are compared with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the model config imports this module and stays free of torch
    import torch

__all__ = ["SentenceContext"]

_EPSILON = 1e-6  # probabilities are clamped into [eps, 1 - eps] before the logit


@dataclass(frozen=True)
class SentenceContext:
    """``p'_i = sigmoid(weight * z_i + relative_weight * (z_i - max_j z_j) + bias)`` over each passage's
    sentences (module docstring). ``ValueError`` unless ``weight + relative_weight > 0`` (the map must keep
    each passage's order of sentences)."""

    weight: float
    relative_weight: float
    bias: float

    def __post_init__(self) -> None:
        if not self.weight + self.relative_weight > 0:
            raise ValueError(
                f"sentence_context weight {self.weight} + relative_weight {self.relative_weight} must be "
                "> 0, or a passage's sentences would change order; refit it (training/soup.py) or remove it"
            )

    def apply(self, probabilities: torch.Tensor, groups: torch.Tensor, num_groups: int) -> torch.Tensor:
        """The layer's probabilities ``[S]`` (float32, on the inputs' device) for ``probabilities`` ``[S]``
        in ``[0, 1]`` whose passage is ``groups`` ``[S]`` (ints in ``[0, num_groups)``). A probability of
        exactly 0 (a sentence without tokens) stays 0 and does not count as its passage's best."""
        import torch

        p = probabilities.float()
        present = p > 0
        z = torch.logit(p.clamp(_EPSILON, 1 - _EPSILON))
        best = torch.full((num_groups,), float("-inf"), device=p.device)
        best = best.scatter_reduce(0, groups.long(), torch.where(present, z, float("-inf")), "amax")
        relative = torch.where(present, z - best[groups.long()], 0.0)
        out = torch.sigmoid(self.weight * z + self.relative_weight * relative + self.bias)
        return torch.where(present, out, 0.0)

    def apply_rows(self, probabilities: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """:meth:`apply` on a ``[B, S]`` layout, one passage per row; ``present`` ``[B, S]`` marks the
        sentences that have tokens (others give 0)."""
        import torch

        rows = torch.arange(probabilities.shape[0], device=probabilities.device)
        groups = rows[:, None].expand_as(probabilities).reshape(-1)
        flat = torch.where(present, probabilities.float(), 0.0).reshape(-1)
        return self.apply(flat, groups, probabilities.shape[0]).view(probabilities.shape)
