"""Turning (query, passage) pairs into encoder rows whose tokens know their sentence.

Every passage token carries the index of the sentence it falls in, so the token head's outputs can
be reduced per sentence and mapped back to character spans. Passages longer than the encoder window
are cut into chunks at sentence boundaries (a single over-long sentence is cut at token boundaries and
keeps one sentence id across its pieces); no passage token is dropped. Titles longer than their share of
the window (``InputLimits``) are cut, and the prepared pair says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter

import numpy as np
from transformers import PreTrainedTokenizerBase

from ragprune.normalize import is_blank
from ragprune.pipeline.ragged import offsets_of, segment_index
from ragprune.pipeline.rows import NO_SENTENCE, Row, RowBlock
from ragprune.text import sentence_bounds
from ragprune.types import InputLimits, Span

__all__ = [
    "NO_SENTENCE",
    "CUDA_WIDTH_STEP",
    "WIDTH_STEP",
    "PairTemplate",
    "PassageTokens",
    "PreparedPair",
    "Row",
    "TokenizedPassage",
    "TokenizedTexts",
    "build_rows",
    "chunk_ranges",
    "layout_rows",
    "padded_width",
    "tokenize_pairs",
    "tokenize_passages",
    "tokenize_texts",
]

WIDTH_STEP = 8
"""Rows are padded to a multiple of this many tokens on the CPU (see ``padded_width``)."""
CUDA_WIDTH_STEP = 32
"""The padding step on CUDA. Measured on an H200 (``training/experiments/session11/profile_host_h200.txt``,
``ab_width_step_h200.txt``): a batch cost ~1.6 ms of host work whatever its size, so coarser widths, giving
fewer and fuller batches (4,096 DL19 pairs in 256-row batches: 21 instead of 35) for 12% more tokens after
padding, raised pairs/s by 10-14% for the default model and 19-22% for a 4-layer one. On the CPU the
padding is paid in compute, and :data:`WIDTH_STEP` stays."""


@dataclass(frozen=True)
class PairTemplate:
    """Where a tokenizer puts its special tokens around a (query, passage) pair."""

    prefix: np.ndarray
    middle: np.ndarray
    suffix: np.ndarray
    query_type: int
    passage_type: int

    @property
    def overhead(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> PairTemplate:
        encoded = tokenizer("a", "b", add_special_tokens=True)
        ids = encoded["input_ids"]
        sequence_ids = encoded.sequence_ids(0)
        first = sequence_ids.index(0)
        second = sequence_ids.index(1)
        last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
        types = encoded.get("token_type_ids") or [0] * len(ids)
        as_array = lambda values: np.asarray(values, dtype=np.int64)  # noqa: E731
        return cls(
            prefix=as_array(ids[:first]),
            middle=as_array(ids[first + 1 : second]),
            suffix=as_array(ids[last + 1 :]),
            query_type=types[first],
            passage_type=types[second],
        )


@dataclass(frozen=True)
class TokenizedTexts:
    """The tokens of ``N`` texts back to back: text ``i`` holds entries ``offsets[i]:offsets[i + 1]``."""

    ids: np.ndarray  # int64 [T], token ids
    starts: np.ndarray  # int64 [T], character offset in its text where each token starts
    offsets: np.ndarray  # int64 [N + 1]

    @property
    def lengths(self) -> np.ndarray:
        """``[N]`` int64 tokens per text."""
        return np.diff(self.offsets)


def tokenize_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> TokenizedTexts:
    """Tokenize ``texts`` (no special tokens, no truncation) in one batched call into flat arrays.

    A fast tokenizer is called through its Rust ``encode_batch`` directly: the same tokens and offsets as
    ``tokenizer(texts, return_offsets_mapping=True)`` for half the time, since no per-token Python lists
    of every field are built. Other tokenizers (or one whose backend truncates or pads) go through the
    ``transformers`` call.
    """
    ids_lists, offset_lists = _ids_and_offsets(tokenizer, list(texts))
    lengths = np.fromiter(map(len, ids_lists), dtype=np.int64, count=len(ids_lists))
    total = int(lengths.sum())
    ids = np.fromiter(chain.from_iterable(ids_lists), dtype=np.int64, count=total)
    starts = map(itemgetter(0), chain.from_iterable(offset_lists))
    return TokenizedTexts(ids, np.fromiter(starts, dtype=np.int64, count=total), offsets_of(lengths))


def _ids_and_offsets(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> tuple[list, list]:
    """Per text: its token ids and ``(start, end)`` character offsets."""
    if not texts:
        return [], []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.truncation is None and backend.padding is None:
        encodings = backend.encode_batch(texts, add_special_tokens=False)
        return [e.ids for e in encodings], [e.offsets for e in encodings]
    # verbose=False: long passages are expected here, they are chunked rather than truncated
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return encoded["input_ids"], encoded["offset_mapping"]


@dataclass(frozen=True)
class PassageTokens:
    """``P`` passages tokenized, with their sentences, as flat arrays (see ``ragprune.pipeline.ragged``).

    Passage ``p``'s body tokens are ``bodies`` piece ``p`` and ``token_sentence`` gives each body token's
    pair-local sentence (``NO_SENTENCE`` before the first sentence); its sentences are rows
    ``sentence_offsets[p]:sentence_offsets[p + 1]`` of ``sentences`` (``(start, end)`` character offsets);
    its title's tokens (none for a blank title, not yet cut to the title budget) are ``titles`` piece ``p``.
    """

    bodies: TokenizedTexts
    token_sentence: np.ndarray  # int64 [T]
    sentences: np.ndarray  # int64 [S, 2]
    sentence_offsets: np.ndarray  # int64 [P + 1]
    titles: TokenizedTexts


def tokenize_pairs(tokenizer: PreTrainedTokenizerBase, texts: list[str], titles: list[str]) -> PassageTokens:
    """Tokenize passages and titles (two batched calls), split the passages into sentences and map each
    token to the sentence its first character falls in."""
    bodies = tokenize_texts(tokenizer, texts)
    bounds = [sentence_bounds(text) for text in texts]
    counts = np.fromiter(map(len, bounds), dtype=np.int64, count=len(bounds))
    flat = chain.from_iterable(chain.from_iterable(bounds))
    sentences = np.fromiter(flat, dtype=np.int64, count=2 * int(counts.sum())).reshape(-1, 2)
    sentence_offsets = offsets_of(counts)
    # one sorted search for all passages: keys are (passage, character) packed into one int64
    stride = max(map(len, texts), default=0) + 1
    token_passage = np.repeat(np.arange(len(texts), dtype=np.int64), bodies.lengths)
    sentence_keys = np.repeat(np.arange(len(texts), dtype=np.int64), counts) * stride + sentences[:, 0]
    found = np.searchsorted(sentence_keys, token_passage * stride + bodies.starts, side="right") - 1
    token_sentence = found - sentence_offsets[token_passage]
    title_tokens = tokenize_texts(tokenizer, ["" if is_blank(title) else title for title in titles])
    return PassageTokens(bodies, token_sentence, sentences, sentence_offsets, title_tokens)


@dataclass(frozen=True)
class TokenizedPassage:
    """A passage's tokens (title tokens first, with no sentence) and its sentence spans."""

    token_ids: np.ndarray
    token_sentence: np.ndarray
    sentences: list[Span]
    title_length: int


def tokenize_passages(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], titles: list[str]
) -> list[TokenizedPassage]:
    """Tokenize passages in one batched call and map each token to its sentence by character offset
    (one object per passage; the pipeline itself keeps them flat, ``tokenize_pairs``)."""
    tokens = tokenize_pairs(tokenizer, texts, titles)
    body, title, sentences = tokens.bodies.offsets, tokens.titles.offsets, tokens.sentence_offsets
    passages = []
    for p in range(len(texts)):
        title_ids = tokens.titles.ids[title[p] : title[p + 1]]
        passages.append(
            TokenizedPassage(
                token_ids=np.concatenate([title_ids, tokens.bodies.ids[body[p] : body[p + 1]]]),
                token_sentence=np.concatenate(
                    [np.full(len(title_ids), NO_SENTENCE), tokens.token_sentence[body[p] : body[p + 1]]]
                ),
                sentences=[
                    Span(int(a), int(b)) for a, b in tokens.sentences[sentences[p] : sentences[p + 1]]
                ],
                title_length=len(title_ids),
            )
        )
    return passages


def chunk_ranges(token_sentence: np.ndarray, title_length: int, budget: int) -> list[tuple[int, int]]:
    """Token ranges of the passage body (after the title) that each fit ``budget`` tokens.

    Whole sentences are packed greedily; a sentence longer than ``budget`` is cut into windows.
    """
    body = token_sentence[title_length:]
    if len(body) <= budget:
        return [(title_length, len(token_sentence))]
    boundaries = np.flatnonzero(np.diff(body)) + 1
    sentence_ranges = list(zip(np.r_[0, boundaries], np.r_[boundaries, len(body)]))
    ranges: list[tuple[int, int]] = []
    start = end = 0
    for s_start, s_end in sentence_ranges:
        if s_end - start <= budget:
            end = s_end
            continue
        if end > start:
            ranges.append((start, end))
        start = end = s_start
        while s_end - start > budget:
            ranges.append((start, start + budget))
            start = end = start + budget
        end = s_end
    if end > start:
        ranges.append((start, end))
    return [(title_length + a, title_length + b) for a, b in ranges]


def padded_width(length: np.ndarray, window: int, step: int = WIDTH_STEP) -> np.ndarray:
    """The width a row of ``length`` tokens is padded to (elementwise for an array of lengths): the next
    multiple of ``step`` (:data:`WIDTH_STEP` on the CPU, :data:`CUDA_WIDTH_STEP` on CUDA), at most
    ``max(length, window)``.

    It depends on the row's own length only, and rows are batched only with rows of the same width, so a
    pair's scores do not depend on what it is batched with: on CPU the attention over a padded row gives
    slightly different floats for different padding widths, and a matrix product whose row count is not a
    multiple of 4 computes its last rows on another code path, which a width in multiples of 8 tokens
    avoids. Sorting rows into these widths also pads less than padding each batch to its longest row.
    """
    return np.minimum(-(-length // step) * step, np.maximum(length, window))


def layout_rows(
    template: PairTemplate,
    max_length: int,
    query_ids: Sequence[np.ndarray],
    tokens: PassageTokens,
) -> tuple[RowBlock, np.ndarray]:
    """The encoder rows of ``P`` pairs, pair ``p`` = (``query_ids[p]``, passage ``p`` of ``tokens``), built
    for all pairs at once: ``[CLS] query [SEP] title body [SEP]`` (the tokenizer's template).

    Returns the rows, pair by pair, and ``[P + 1]`` offsets: pair ``p``'s rows are
    ``offsets[p]:offsets[p + 1]`` (one row, or one per chunk when the passage is too long; none for a passage
    without tokens). The title is context for the score, repeated in every chunk, and never pruned; it keeps
    its first ``max_title_tokens`` tokens. Each query must fit ``max_query_tokens`` (``process`` checks and
    truncates queries before preparing pairs), else ``ValueError``. The limits are
    ``InputLimits.for_window(max_length, template.overhead)``.
    """
    limits = InputLimits.for_window(max_length, template.overhead)
    pairs = len(query_ids)
    # identical query arrays (one query's pairs share one) are stored once
    slot: dict[int, int] = {}
    unique: list[np.ndarray] = []
    pair_query = np.empty(pairs, dtype=np.int64)
    for p, query in enumerate(query_ids):
        if id(query) not in slot:
            slot[id(query)] = len(unique)
            unique.append(query)
        pair_query[p] = slot[id(query)]
    query_lengths = np.fromiter(map(len, unique), dtype=np.int64, count=len(unique))
    if len(unique) and query_lengths.max() > limits.max_query_tokens:
        raise ValueError(
            f"the query is {query_lengths.max()} tokens long; this model reads at most "
            f"{limits.max_query_tokens} query tokens"
        )
    query_length = query_lengths[pair_query]
    title_length = np.minimum(tokens.titles.lengths, limits.max_title_tokens)
    body_length = tokens.bodies.lengths
    budget = limits.window - template.overhead - query_length - title_length

    # rows as (pair, first, end) body positions: one per passage with tokens, chunks for long ones
    counts = (body_length > 0).astype(np.int64)
    body = tokens.bodies.offsets
    chunks = {
        p: chunk_ranges(tokens.token_sentence[body[p] : body[p + 1]], 0, int(budget[p]))
        for p in np.flatnonzero(body_length > budget).tolist()
    }
    for p, ranges in chunks.items():
        counts[p] = len(ranges)
    pair_rows = offsets_of(counts)
    row_pair = np.repeat(np.arange(pairs, dtype=np.int64), counts)
    first = np.zeros(len(row_pair), dtype=np.int64)
    end = body_length[row_pair].copy()
    for p, ranges in chunks.items():
        rows = slice(pair_rows[p], pair_rows[p + 1])
        first[rows], end[rows] = zip(*ranges)

    # each row is six segments of one pool: prefix, query, middle, title, body, suffix
    parts = [
        template.prefix,
        template.middle,
        template.suffix,
        *unique,
        tokens.titles.ids,
        tokens.bodies.ids,
    ]
    base = offsets_of(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)))
    pool = np.concatenate([np.zeros(0, dtype=np.int64), *parts]).astype(np.int64, copy=False)
    query_start = base[3 : 3 + len(unique)] if unique else np.zeros(0, dtype=np.int64)
    title_base, body_base = base[-3], base[-2]
    starts = np.stack(
        [
            np.full(len(row_pair), base[0]),
            query_start[pair_query[row_pair]],
            np.full(len(row_pair), base[1]),
            title_base + tokens.titles.offsets[row_pair],
            body_base + body[row_pair] + first,
            np.full(len(row_pair), base[2]),
        ],
        axis=1,
    )
    lengths = np.stack(
        [
            np.full(len(row_pair), len(template.prefix)),
            query_length[row_pair],
            np.full(len(row_pair), len(template.middle)),
            title_length[row_pair],
            end - first,
            np.full(len(row_pair), len(template.suffix)),
        ],
        axis=1,
    ).astype(np.int64)
    index = segment_index(starts.ravel(), lengths.ravel())
    types = [template.query_type] * 3 + [template.passage_type] * 3
    sentence_pool = np.concatenate([np.full(body_base, NO_SENTENCE, dtype=np.int64), tokens.token_sentence])
    block = RowBlock(
        input_ids=pool[index].astype(np.int32),
        token_type_ids=np.repeat(np.tile(np.asarray(types, dtype=np.int8), len(row_pair)), lengths.ravel()),
        sentence_ids=sentence_pool[index].astype(np.int32),
        offsets=offsets_of(lengths.sum(axis=1)),
    )
    return block, pair_rows


def build_rows(
    query_ids: np.ndarray,
    passage: TokenizedPassage,
    template: PairTemplate,
    max_length: int,
) -> list[Row]:
    """The encoder rows of one pair (``layout_rows`` for one passage; training builds its rows with it)."""
    title, body = passage.token_ids[: passage.title_length], passage.token_ids[passage.title_length :]
    body_sentence = passage.token_sentence[passage.title_length :]
    tokens = PassageTokens(
        bodies=TokenizedTexts(body, np.zeros(len(body), np.int64), offsets_of(np.array([len(body)]))),
        token_sentence=body_sentence,
        sentences=np.zeros((0, 2), dtype=np.int64),
        sentence_offsets=np.zeros(2, dtype=np.int64),
        titles=TokenizedTexts(title, np.zeros(len(title), np.int64), offsets_of(np.array([len(title)]))),
    )
    block, _ = layout_rows(template, max_length, [query_ids], tokens)
    return [block.row(r) for r in range(len(block))]


@dataclass(frozen=True)
class PreparedPair:
    """What the encoder needs for one (query, passage) pair: its rows (none when the passage has no
    token), the passage's sentences, and whether its title was cut to fit."""

    rows: list[Row]
    sentences: list[Span]
    title_truncated: bool = False
