"""The rank head's loss: listwise distillation of the student's logits to the teacher's scores."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ListwiseDistillationLoss(nn.Module):
    """KL divergence from a teacher's softmax distribution over a query's candidates to the student's.

    For one query with candidate scores ``s`` (student logits) and ``t`` (teacher scores, z-scored per query
    in the training data), the target is ``q = softmax(t / temperature)``; where the query has gold
    passages, ``q <- (1 - gold_mix) * q + gold_mix * g`` with ``g`` uniform over the gold candidates.
    The loss is ``KL(q || softmax(s)) = sum_i q_i (log q_i - log_softmax(s)_i)``, averaged over queries.
    Up to the target's entropy (a constant) this is ListNet's top-one cross-entropy (Cao et al., ICML 2007)
    with a temperature-softened teacher as in knowledge distillation (Hinton et al., 2015).

    Args:
        temperature: divides the teacher scores before the softmax (> 0): above 1 flattens the target
            (more weight on the teacher's lower candidates), below 1 sharpens it. ``TrainConfig.tau``.
        gold_mix: share of the target given to the gold passages, in ``[0, 1]`` (0: teacher only).
            ``TrainConfig.gold_mix``.

    Inputs of ``forward``:

    * ``scores`` ``[Q, G]``: the student's rank logits, one row per query, ``G`` candidates each;
    * ``teacher`` ``[Q, G]``: the teacher's scores of the same candidates;
    * ``gold`` ``[Q, G]`` bool (optional): which candidates are gold passages.

    Returns a scalar (``reduction="batchmean"``: the sum over candidates, averaged over the ``Q`` queries).
    Raises ``ValueError`` for shapes that differ or parameters out of range.
    """

    def __init__(self, temperature: float = 1.0, gold_mix: float = 0.3) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature={temperature} must be > 0")
        if not 0.0 <= gold_mix <= 1.0:
            raise ValueError(f"gold_mix={gold_mix} must lie in [0, 1]")
        self.temperature = temperature
        self.gold_mix = gold_mix

    def config(self) -> dict[str, float]:
        """The loss's parameters (for logs and summaries)."""
        return {"temperature": self.temperature, "gold_mix": self.gold_mix}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gold_mix={self.gold_mix}"

    def target(self, teacher: torch.Tensor, gold: torch.Tensor | None = None) -> torch.Tensor:
        """The target distribution ``[Q, G]`` (rows sum to 1) from teacher scores and gold flags."""
        target = torch.softmax(teacher.float() / self.temperature, dim=-1)
        if gold is None or not self.gold_mix:
            return target
        gold = gold.to(target.dtype)
        count = gold.sum(-1, keepdim=True)
        mixed = (1 - self.gold_mix) * target + self.gold_mix * gold / count.clamp(min=1)
        return torch.where(count > 0, mixed, target)

    def forward(
        self, scores: torch.Tensor, teacher: torch.Tensor, gold: torch.Tensor | None = None
    ) -> torch.Tensor:
        if scores.shape != teacher.shape or (gold is not None and gold.shape != scores.shape):
            raise ValueError(
                f"scores {tuple(scores.shape)}, teacher {tuple(teacher.shape)} and gold "
                f"{None if gold is None else tuple(gold.shape)} must all be [queries, candidates]"
            )
        target = self.target(teacher.to(scores.device), None if gold is None else gold.to(scores.device))
        return F.kl_div(F.log_softmax(scores.float(), dim=-1), target, reduction="batchmean")
