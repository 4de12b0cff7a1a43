"""The token head: a keep logit for every token, reduced to sentence scores after the encoder."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ragprune.models.heads.base import Head, Reads


class TokenHead(Head):
    """Keep logit per token, ``[B, L, H] -> [B, L]``; ``sigmoid`` of it is the token's keep probability.

    One linear map (Provence's token classifier, Chirkova et al. 2025, section 3). Because it is linear,
    :meth:`linear_map` hands its weights to the fused sentence-scoring kernel (``ragprune.kernels``), which
    computes the logits, probabilities and sentence reduction in one pass without writing ``[B, L]``.
    """

    reads: ClassVar[Reads] = "tokens"

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(hidden).squeeze(-1)

    def linear_map(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight [H], bias [])`` with ``logit = hidden @ weight + bias``."""
        return self.out.weight[0], self.out.bias[0]
