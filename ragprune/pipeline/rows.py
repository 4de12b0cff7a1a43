"""Encoder rows: one at a time (``Row``) or many back to back in flat arrays (``RowBlock``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragprune.pipeline.ragged import offsets_of

NO_SENTENCE = -1  # query, title and special tokens


@dataclass(frozen=True)
class Row:
    """One encoder input: a chunk of one pair's passage after the query.

    Compact dtypes (int32 ids, int8 token types): rows are pickled from the preparation workers to the
    process that drives the GPU, and that process's unpickling is on the critical path.
    """

    input_ids: np.ndarray  # int32
    token_type_ids: np.ndarray  # int8
    sentence_ids: np.ndarray  # int32, per input token: the pair-local sentence index, or NO_SENTENCE


@dataclass(frozen=True)
class RowBlock:
    """``R`` encoder rows back to back: row ``r`` is entries ``offsets[r]:offsets[r + 1]`` of the token
    arrays (``[N]`` each; dtypes as in ``Row``). A few arrays pickle far faster than ``R`` ``Row`` objects."""

    input_ids: np.ndarray  # int32 [N]
    token_type_ids: np.ndarray  # int8 [N]
    sentence_ids: np.ndarray  # int32 [N], pair-local sentence index or NO_SENTENCE
    offsets: np.ndarray  # int64 [R + 1]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """``[R]`` int64 tokens per row."""
        return np.diff(self.offsets)

    def row(self, r: int) -> Row:
        """Row ``r`` as a ``Row`` (views into the block's arrays)."""
        a, b = int(self.offsets[r]), int(self.offsets[r + 1])
        return Row(self.input_ids[a:b], self.token_type_ids[a:b], self.sentence_ids[a:b])

    @classmethod
    def from_rows(cls, rows: Sequence[Row]) -> RowBlock:
        lengths = np.fromiter((len(row.input_ids) for row in rows), dtype=np.int64, count=len(rows))
        return cls(
            _concatenate([row.input_ids for row in rows], np.int32),
            _concatenate([row.token_type_ids for row in rows], np.int8),
            _concatenate([row.sentence_ids for row in rows], np.int32),
            offsets_of(lengths),
        )

    @classmethod
    def concat(cls, blocks: Sequence[RowBlock]) -> RowBlock:
        """The rows of ``blocks`` one block after the other."""
        return cls(
            _concatenate([b.input_ids for b in blocks], np.int32),
            _concatenate([b.token_type_ids for b in blocks], np.int8),
            _concatenate([b.sentence_ids for b in blocks], np.int32),
            offsets_of(np.concatenate([np.zeros(0, np.int64)] + [b.lengths for b in blocks])),
        )


def _concatenate(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate([np.zeros(0, dtype=dtype), *arrays]).astype(dtype, copy=False)
