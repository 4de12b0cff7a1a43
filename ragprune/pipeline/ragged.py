"""Ragged arrays: many variable-length pieces stored back to back in one flat array plus offsets.

Piece ``i`` of a flat array ``values`` with offsets ``o`` (``[n + 1]``, ``o[0] == 0``) is
``values[o[i]:o[i + 1]]``. The helpers here build offsets and gather pieces without a Python loop per piece.
"""

from __future__ import annotations

import numpy as np


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    """``[n + 1]`` int64 offsets of pieces with ``lengths`` (``[n]``): 0, then the running sum."""
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def segment_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices ``starts[0] .. starts[0] + lengths[0] - 1, starts[1] .. , ...`` as one int64 array of
    ``lengths.sum()`` entries: gathering a flat array with it concatenates the segments (``[n]`` each)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.asarray(starts, dtype=np.int64) - offsets_of(lengths)[:-1]
    return np.repeat(shift, lengths) + np.arange(total, dtype=np.int64)
