"""Prepared pairs as flat arrays: what the preparation workers hand the process that drives the encoder.

A shard of ``P`` pairs is a handful of arrays (``PreparedShard``), not ``P`` objects with lists of rows
and spans: it pickles in one go and the encoder stages read it with array operations. ``shard[p]`` still
gives one pair as a ``PreparedPair`` where a caller wants objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerBase

from ragprune.pipeline.encoding import PairTemplate, PreparedPair, layout_rows, tokenize_pairs
from ragprune.pipeline.ragged import offsets_of
from ragprune.pipeline.rows import RowBlock
from ragprune.types import InputLimits, Span


@dataclass(frozen=True)
class PreparedShard:
    """``P`` prepared pairs (see ``PreparedPair``) as flat arrays.

    - ``rows``: the encoder rows of all pairs, pair after pair; pair ``p``'s are rows
      ``pair_rows[p]:pair_rows[p + 1]`` (``[P + 1]`` int64; none when its passage has no token);
    - ``sentences``: ``[S, 2]`` int64 ``(start, end)`` character offsets of every pair's sentences, pair
      ``p``'s at ``sentence_offsets[p]:sentence_offsets[p + 1]`` (``[P + 1]`` int64);
    - ``title_truncated``: ``[P]`` bool, whether the pair's title was cut to fit.
    """

    rows: RowBlock
    pair_rows: np.ndarray
    sentences: np.ndarray
    sentence_offsets: np.ndarray
    title_truncated: np.ndarray

    def __len__(self) -> int:
        return len(self.title_truncated)

    def __getitem__(self, pair: int) -> PreparedPair:
        rows = [self.rows.row(r) for r in range(self.pair_rows[pair], self.pair_rows[pair + 1])]
        return PreparedPair(rows, self.spans(pair), bool(self.title_truncated[pair]))

    def __iter__(self) -> Iterator[PreparedPair]:
        return (self[p] for p in range(len(self)))

    @property
    def row_counts(self) -> np.ndarray:
        """``[P]`` int64 encoder rows per pair."""
        return np.diff(self.pair_rows)

    @property
    def sentence_counts(self) -> np.ndarray:
        """``[P]`` int64 sentences per pair."""
        return np.diff(self.sentence_offsets)

    def spans(self, pair: int) -> list[Span]:
        """Pair ``pair``'s sentences as ``Span`` objects."""
        bounds = self.sentences[self.sentence_offsets[pair] : self.sentence_offsets[pair + 1]].tolist()
        return [Span(start, end) for start, end in bounds]

    @classmethod
    def concat(cls, shards: Sequence[PreparedShard]) -> PreparedShard:
        """The pairs of ``shards``, one shard after the other."""
        if len(shards) == 1:
            return shards[0]
        return cls(
            RowBlock.concat([s.rows for s in shards]),
            offsets_of(np.concatenate([np.zeros(0, np.int64), *(s.row_counts for s in shards)])),
            np.concatenate([np.zeros((0, 2), np.int64), *(s.sentences for s in shards)]),
            offsets_of(np.concatenate([np.zeros(0, np.int64), *(s.sentence_counts for s in shards)])),
            np.concatenate([np.zeros(0, bool), *(s.title_truncated for s in shards)]),
        )

    @classmethod
    def from_pairs(cls, pairs: Sequence[PreparedPair]) -> PreparedShard:
        """The shard of ``PreparedPair`` objects (e.g. pairs prepared earlier and kept)."""
        rows = RowBlock.from_rows([row for pair in pairs for row in pair.rows])
        counts = np.fromiter((len(pair.sentences) for pair in pairs), dtype=np.int64, count=len(pairs))
        bounds = [(span.start, span.end) for pair in pairs for span in pair.sentences]
        return cls(
            rows,
            offsets_of(np.fromiter((len(pair.rows) for pair in pairs), dtype=np.int64, count=len(pairs))),
            np.asarray(bounds, dtype=np.int64).reshape(-1, 2),
            offsets_of(counts),
            np.fromiter((pair.title_truncated for pair in pairs), dtype=bool, count=len(pairs)),
        )


def prepare_shard(
    tokenizer: PreTrainedTokenizerBase,
    template: PairTemplate,
    max_length: int,
    query_ids: Sequence[np.ndarray],
    texts: list[str],
    titles: list[str],
) -> PreparedShard:
    """Rows and sentences of each pair; ``query_ids[i]`` are the query tokens of pair ``i`` (pairs of one
    query may share one array: it is laid out once)."""
    tokens = tokenize_pairs(tokenizer, texts, titles)
    rows, pair_rows = layout_rows(template, max_length, query_ids, tokens)
    max_title_tokens = InputLimits.for_window(max_length, template.overhead).max_title_tokens
    return PreparedShard(
        rows, pair_rows, tokens.sentences, tokens.sentence_offsets, tokens.titles.lengths > max_title_tokens
    )
