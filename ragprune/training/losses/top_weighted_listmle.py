"""A list head's loss for full lists: ListMLE of the teacher's order, positions weighted toward the top."""

from __future__ import annotations

import torch
from torch import nn

from ragprune.training.losses.list_inputs import list_inputs


class TopWeightedListMLELoss(nn.Module):
    """Negative log-likelihood of the teacher's permutation under the Plackett-Luce model of the student's
    scores, with the term of rank ``r`` weighted ``1 + 1 / log2(r + 1)``.

    ListMLE (Xia et al., ICML 2008): with ``pi`` the teacher's order (best first) and ``s`` the student's
    logits, ``-sum_r w_r (s_pi(r) - logsumexp_{k >= r} s_pi(k))``. The weights are the importance-aware
    ones of full ranking (Liu et al., "Sliding Windows Are Not the End: Exploring Full Ranking with
    Long-Context Large Language Models", ACL 2025, section 4.2: identifier tokens of rank ``r`` weighted
    ``1 + 1 / log2(r + 1)``), so the top of the list counts most. The sum is divided by the sum of the
    weights of the valid ranks and averaged over queries.

    Inputs of ``forward``: ``scores`` ``[Q, G]``, ``teacher`` ``[Q, G]``, optional ``mask`` ``[Q, G]``
    bool (``False`` = padding). Returns a scalar. ``ValueError`` for shapes that differ.
    """

    def forward(
        self, scores: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        scores, teacher, valid = list_inputs(scores, teacher, mask)
        order = teacher.masked_fill(~valid, float("-inf")).argsort(dim=1, descending=True)
        ordered = scores.gather(1, order).masked_fill(~valid.gather(1, order), float("-inf"))
        # log of the Plackett-Luce denominators: logsumexp over ranks r..G (a reversed cumulative logsumexp)
        tail = ordered.flip(1).logcumsumexp(1).flip(1)
        ranks = torch.arange(1, scores.shape[1] + 1, device=scores.device, dtype=scores.dtype)
        weight = (1 + 1 / torch.log2(ranks + 1)) * valid.gather(1, order).float()
        terms = torch.where(weight > 0, ordered - tail, torch.zeros_like(ordered))
        per_query = -(weight * terms).sum(1) / weight.sum(1).clamp(min=1e-12)
        return per_query.mean()
