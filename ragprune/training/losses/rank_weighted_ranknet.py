"""A list head's loss: RankNet over the teacher's order, each pair weighted by its ranks (FIRST)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ragprune.training.losses.list_inputs import list_inputs


class RankWeightedRankNetLoss(nn.Module):
    """Pairwise logistic loss over every pair the teacher orders, weighted toward the top of the list.

    The candidates are ranked by the teacher (rank 1 = best). For each pair with teacher ranks
    ``i < j`` the loss is ``log(1 + exp(s_j - s_i)) / (i + j)`` (RankNet, Burges et al., ICML 2005, with
    the rank weight ``1 / (i + j)`` of FIRST: Reddy et al. 2024, "FIRST: Faster Improved Listwise
    Reranking with Single Token Decoding", section 3.3), summed over pairs, divided by the sum of the
    weights, and averaged over queries. Pairs the teacher ties are skipped.

    Inputs of ``forward``: ``scores`` ``[Q, G]`` (the student's logits, any float dtype) and ``teacher``
    ``[Q, G]`` (scores that set the order), optional ``mask`` ``[Q, G]`` bool (``False`` = padding, left
    out of every pair). Returns a scalar. ``ValueError`` for shapes that differ.
    """

    def forward(
        self, scores: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        scores, teacher, valid = list_inputs(scores, teacher, mask)
        # rank 1 = the teacher's best valid candidate; padding ranks after every valid one
        keyed = teacher.masked_fill(~valid, float("-inf"))
        ranks = torch.empty_like(scores)
        ranks.scatter_(
            1,
            keyed.argsort(dim=1, descending=True),
            torch.arange(1, scores.shape[1] + 1, device=scores.device, dtype=scores.dtype)
            .expand_as(scores)
            .contiguous(),
        )
        better = (teacher.unsqueeze(2) > teacher.unsqueeze(1)) & valid.unsqueeze(2) & valid.unsqueeze(1)
        weight = better.float() / (ranks.unsqueeze(2) + ranks.unsqueeze(1))
        pair_loss = F.softplus(scores.unsqueeze(1) - scores.unsqueeze(2))  # [q, a, b] = log(1+e^(s_b - s_a))
        per_query = (weight * pair_loss).sum((1, 2)) / weight.sum((1, 2)).clamp(min=1e-12)
        return per_query.mean()
