"""The rank head: a relevance logit from the ``[CLS]`` hidden state."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from transformers.activations import ACT2FN

from ragprune.models.heads.base import Head, Reads


class RankHead(Head):
    """Relevance logit from the ``[CLS]`` hidden state, ``[B, H] -> [B]``.

    With ``pooler_activation`` set it is ``out(act(pooler(h_cls)))`` (Provence's layout, the DeBERTa
    ``ContextPooler``); without, a single linear layer on ``[CLS]``.

    Each row's logit is independent of the other rows of the batch, bit for bit: a matrix product with few
    rows (``[B, H] @ [H, 1]`` always) takes a CPU code path whose result for a row depends on its position
    among the ``B`` rows, so the output layer is a multiply-and-sum and the optional pooler runs on one row
    at a time.
    """

    reads: ClassVar[Reads] = "cls"

    def __init__(self, hidden_size: int, pooler_activation: str | None = None) -> None:
        super().__init__()
        self.pooler = nn.Linear(hidden_size, hidden_size) if pooler_activation else None
        self.activation = ACT2FN[pooler_activation] if pooler_activation else None
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, cls_hidden: torch.Tensor) -> torch.Tensor:
        x = cls_hidden
        if self.pooler is not None and self.activation is not None:
            x = self.activation(torch.cat([self.pooler(row) for row in x.split(1)]))
        return (x * self.out.weight[0]).sum(-1) + self.out.bias[0]
