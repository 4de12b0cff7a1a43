"""The listwise head: one logit per candidate from a single learned rank token over the whole list.

The encoder analogue of FIRST's single-token readout (Reddy et al., "FIRST: Faster Improved Listwise
Reranking with Single Token Decoding", 2024, section 3): where FIRST reads the logits of the first generated
token over the candidates' identifiers, this head reads the dot product of a learned rank token with each
candidate's vector after a few layers of attention among the candidates (Set-Encoder style inter-passage
attention, Schlatt et al., ECIR 2025, section 3, over the pointwise pass's ``[CLS]`` vectors instead of every
layer). No position enters, so the output is permutation-equivariant: shuffling the list shuffles the logits.
The pointwise rank logit is an input and the residual base: with ``gate`` 0 (its initial value) the head
returns the pointwise ranking unchanged.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from ragprune.models.heads.base import Head, Reads


class ListwiseHead(Head):
    """``(vectors [N, H], rank_logits [N]) -> [N]`` listwise logits for one query's ``N`` candidates.

    ``width``: size of the list module; ``layers``/``attention_heads``: its self-attention layers over the
    rank token and the candidates (no positional encoding); ``dropout`` while training.
    """

    reads: ClassVar[Reads] = "candidates"

    def __init__(
        self,
        hidden_size: int,
        width: int = 64,
        layers: int = 1,
        attention_heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.project = nn.Linear(hidden_size, width)
        self.logit_in = nn.Linear(1, width)
        self.rank_token = nn.Parameter(torch.zeros(width))
        layer = nn.TransformerEncoderLayer(
            width,
            attention_heads,
            dim_feedforward=2 * width,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, vectors: torch.Tensor, rank_logits: torch.Tensor) -> torch.Tensor:
        logits = rank_logits.float()
        standard = (logits - logits.mean()) / (logits.std(unbiased=False) + 1e-6)
        dtype = self.project.weight.dtype  # the head's own (bf16 on CUDA at inference), statistics in fp32
        x = self.project(vectors.to(dtype)) + self.logit_in(standard.unsqueeze(-1).to(dtype))
        sequence = torch.cat([self.rank_token.unsqueeze(0), x]).unsqueeze(0)  # [1, 1 + N, width]
        out = self.layers(sequence)[0].float()
        token, candidates = out[0], out[1:]
        return logits + self.gate.float() * (candidates @ token) / math.sqrt(token.numel())
