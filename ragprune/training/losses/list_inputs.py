"""Input checks shared by the list losses: shapes, dtype and the padding mask."""

from __future__ import annotations

import torch


def list_inputs(
    scores: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(scores, teacher, valid)``: fp32 ``[Q, G]`` scores and teacher scores on the scores' device and the
    bool ``[Q, G]`` mask of real candidates (all ``True`` without ``mask``). ``ValueError`` naming the
    shapes when they differ."""
    if scores.shape != teacher.shape or (mask is not None and mask.shape != scores.shape):
        raise ValueError(
            f"scores {tuple(scores.shape)}, teacher {tuple(teacher.shape)} and mask "
            f"{None if mask is None else tuple(mask.shape)} must all be [queries, candidates]"
        )
    scores, teacher = scores.float(), teacher.float().to(scores.device)
    valid = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.to(scores.device)
    return scores, teacher, valid
