"""Encoder rows → one padded batch of arrays: the padding that inference and training share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ragprune.pipeline.ragged import segment_index
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
    out: np.ndarray | None = None,
) -> PaddedRows:
    """``pad_rows`` for rows ``rows`` (``[R]`` indices) of a ``RowBlock``, in array operations only (rows
    hold at least one token, as every encoder row does: its special tokens).

    ``out``: an int64 ``[4, R, W]`` array to write ``input_ids``, ``token_type_ids``, ``attention_mask`` and
    ``sentence_ids`` into, in that order (e.g. a view of a page-locked buffer that goes to the GPU in one
    copy); the result's arrays are its views. Each row's tokens are scattered into the padded grid, so the
    work grows with the real tokens rather than ``R * W``.
    """
    lengths = block.lengths[rows]
    width = int(lengths.max(initial=0)) if width is None else width
    if len(lengths) and lengths.max() > width:
        r = int(np.argmax(lengths > width))
        raise ValueError(f"row {r} has {lengths[r]} tokens, more than the batch width {width}")
    if out is None:
        out = np.empty((4, len(rows), width), dtype=np.int64)
    elif out.shape != (4, len(rows), width) or out.dtype != np.int64 or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous int64 [4, {len(rows)}, {width}] array, got {out.dtype} "
            f"{list(out.shape)}"
        )
    input_ids, token_type_ids, attention_mask, sentence_ids = out
    source = segment_index(block.offsets[rows], lengths)  # every real token, row after row
    target = segment_index(np.arange(len(rows), dtype=np.int64) * width, lengths)  # its cell in the grid
    input_ids.fill(pad_id)
    token_type_ids.fill(0)
    sentence_ids.fill(NO_SENTENCE)
    input_ids.reshape(-1)[target] = block.input_ids[source]
    token_type_ids.reshape(-1)[target] = block.token_type_ids[source]
    sentences = block.sentence_ids[source].astype(np.int64)
    if sentence_offsets is not None:
        shift = np.repeat(np.asarray(sentence_offsets, dtype=np.int64), lengths)
        sentences = np.where(sentences == NO_SENTENCE, NO_SENTENCE, sentences + shift)
    sentence_ids.reshape(-1)[target] = sentences
    np.less(np.arange(width), lengths[:, None], out=attention_mask, casting="unsafe")
    return PaddedRows(input_ids, token_type_ids, attention_mask, sentence_ids)
