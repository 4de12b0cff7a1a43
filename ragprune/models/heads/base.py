"""Base class of the shared encoder's heads: each declares which part of the encoder's output it reads."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

Reads = Literal["cls", "tokens", "candidates"]
"""What a head reads:

- ``"cls"``: the ``[CLS]`` hidden state of each row, ``[B, H]`` → one value per row ``[B]``;
- ``"tokens"``: every token's hidden state, ``[B, L, H]`` → one value per token ``[B, L]``;
- ``"candidates"``: one query's list of per-candidate ``[CLS]`` vectors ``[N, H]`` and their rank logits
  ``[N]`` → one value per candidate ``[N]`` (list-level heads: they run after the pointwise pass, once per
  query, on what it computed).
"""


class Head(nn.Module):
    """Base class of the heads in ``RerankPruneModel.heads``.

    A head is built as ``cls(hidden_size, **options)`` from its config entry
    (``ragprune.models.config.HeadSpec``) and called with what ``reads`` names. Adding a head is one
    subclass plus a config entry whose ``type`` is a built-in name or ``"package.module:ClassName"``.
    """

    reads: ClassVar[Reads]

    def linear_map(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(weight [H], bias [])`` for a ``"tokens"`` head that is one linear map ``hidden @ weight + b``:
        the fused sentence-scoring kernel then computes it in place of the head. ``None`` (the default): the
        pipeline calls the head and reduces its ``sigmoid`` probabilities (``kernels.reduce_sentences``).
        """
        return None
