"""Small heads that read the shared encoder's hidden states."""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN


class RankHead(nn.Module):
    """Relevance logit from the ``[CLS]`` hidden state.

    With ``pooler_activation`` set it is ``out(act(pooler(h_cls)))`` (Provence's layout);
    without, a single linear layer on ``[CLS]``.
    """

    def __init__(self, hidden_size: int, pooler_activation: str | None = None) -> None:
        super().__init__()
        self.pooler = nn.Linear(hidden_size, hidden_size) if pooler_activation else None
        self.activation = ACT2FN[pooler_activation] if pooler_activation else None
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, cls_hidden: torch.Tensor) -> torch.Tensor:
        x = cls_hidden
        if self.pooler is not None:
            x = self.activation(self.pooler(x))
        return self.out(x).squeeze(-1)


class TokenHead(nn.Module):
    """Keep logit for every token; ``sigmoid`` of it is the token's keep probability."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(hidden).squeeze(-1)
