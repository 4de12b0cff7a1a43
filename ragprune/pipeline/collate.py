"""Encoder rows → one padded batch of arrays: the padding that inference and training share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ragprune.pipeline.encoding import NO_SENTENCE, Row


@dataclass(frozen=True)
class PaddedRows:
    """Rows padded to one width ``W``; every array is ``[R, W]`` int64.

    ``attention_mask`` is 1 on real tokens; padding has token id ``pad_id``, token type 0 and sentence
    ``NO_SENTENCE``.
    """

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    attention_mask: np.ndarray
    sentence_ids: np.ndarray

    def tensors(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """The arrays as int64 tensors on ``device``, keyed by field name."""
        return {
            name: torch.from_numpy(getattr(self, name)).to(device, non_blocking=True)
            for name in ("input_ids", "token_type_ids", "attention_mask", "sentence_ids")
        }


def pad_rows(
    rows: Sequence[Row],
    pad_id: int,
    width: int | None = None,
    sentence_offsets: Sequence[int] | np.ndarray | None = None,
) -> PaddedRows:
    """Pad ``rows`` to ``width`` tokens (default: the longest row).

    ``sentence_offsets[r]`` is added to row ``r``'s sentence ids (not to ``NO_SENTENCE``), so the rows of
    several pairs can index one flat list of sentences; without it the ids stay pair-local.
    ``ValueError`` if a row is longer than ``width``.
    """
    width = max((len(row.input_ids) for row in rows), default=0) if width is None else width
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    token_types = np.zeros((len(rows), width), dtype=np.int64)
    attention = np.zeros((len(rows), width), dtype=np.int64)
    sentence_ids = np.full((len(rows), width), NO_SENTENCE, dtype=np.int64)
    for r, row in enumerate(rows):
        n = len(row.input_ids)
        if n > width:
            raise ValueError(f"row {r} has {n} tokens, more than the batch width {width}")
        input_ids[r, :n] = row.input_ids
        token_types[r, :n] = row.token_type_ids
        attention[r, :n] = 1
        local = row.sentence_ids
        if sentence_offsets is None:
            sentence_ids[r, :n] = local
        else:
            sentence_ids[r, :n] = np.where(local == NO_SENTENCE, NO_SENTENCE, local + sentence_offsets[r])
    return PaddedRows(input_ids, token_types, attention, sentence_ids)
