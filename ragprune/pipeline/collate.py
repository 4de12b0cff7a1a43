"""Encoder rows → one padded batch of arrays: the padding that inference and training share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ragprune.pipeline.rows import NO_SENTENCE, Row, RowBlock


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
    block = RowBlock.from_rows(rows)
    return pad_block(block, np.arange(len(block)), pad_id, width, sentence_offsets)


def pad_block(
    block: RowBlock,
    rows: np.ndarray,
    pad_id: int,
    width: int | None = None,
    sentence_offsets: Sequence[int] | np.ndarray | None = None,
) -> PaddedRows:
    """``pad_rows`` for rows ``rows`` (``[R]`` indices) of a ``RowBlock``, in array operations only (rows
    hold at least one token, as every encoder row does: its special tokens)."""
    lengths = block.lengths[rows]
    width = int(lengths.max(initial=0)) if width is None else width
    if len(lengths) and lengths.max() > width:
        r = int(np.argmax(lengths > width))
        raise ValueError(f"row {r} has {lengths[r]} tokens, more than the batch width {width}")
    columns = np.arange(width, dtype=np.int64)
    valid = columns < lengths[:, None]
    index = np.where(valid, block.offsets[rows][:, None] + columns, 0)
    sentences = block.sentence_ids[index].astype(np.int64)
    if sentence_offsets is not None:
        shift = np.asarray(sentence_offsets, dtype=np.int64)[:, None]
        sentences = np.where(sentences == NO_SENTENCE, NO_SENTENCE, sentences + shift)
    return PaddedRows(
        input_ids=np.where(valid, block.input_ids[index], pad_id).astype(np.int64),
        token_type_ids=np.where(valid, block.token_type_ids[index], 0).astype(np.int64),
        attention_mask=valid.astype(np.int64),
        sentence_ids=np.where(valid, sentences, NO_SENTENCE),
    )
