"""Turning (query, passage) pairs into encoder rows whose tokens know their sentence.

Every passage token carries the index of the sentence it falls in, so the token head's outputs can
be reduced per sentence and mapped back to character spans. Passages longer than the encoder window
are cut into chunks at sentence boundaries (a single over-long sentence is cut at token boundaries and
keeps one sentence id across its pieces); no passage token is dropped. Titles longer than their share of
the window (``InputLimits``) are cut, and the prepared pair says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerBase

from ragprune.normalize import is_blank
from ragprune.text import split_sentences
from ragprune.types import InputLimits, Span

NO_SENTENCE = -1  # query, title and special tokens
WIDTH_STEP = 8
"""Rows are padded to a multiple of this many tokens (see ``padded_width``)."""


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
class TokenizedPassage:
    """A passage's tokens (title tokens first, with no sentence) and its sentence spans."""

    token_ids: np.ndarray
    token_sentence: np.ndarray
    sentences: list[Span]
    title_length: int


@dataclass(frozen=True)
class Row:
    """One encoder input: a chunk of one pair's passage after the query.

    Compact dtypes (int32 ids, int8 token types): rows are pickled from the preparation workers to the
    process that drives the GPU, and that process's unpickling is on the critical path.
    """

    input_ids: np.ndarray  # int32
    token_type_ids: np.ndarray  # int8
    sentence_ids: np.ndarray  # int32, per input token: the pair-local sentence index, or NO_SENTENCE


def tokenize_passages(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], titles: list[str]
) -> list[TokenizedPassage]:
    """Tokenize passages in one batched call and map each token to its sentence by character offset."""
    if not texts:
        return []
    # verbose=False: long passages are expected here, they are chunked rather than truncated
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    title_ids = _tokenize_titles(tokenizer, titles)
    passages = []
    for text, ids, offsets, title in zip(texts, encoded["input_ids"], encoded["offset_mapping"], title_ids):
        sentences = split_sentences(text)
        starts = np.fromiter((span.start for span in sentences), dtype=np.int64, count=len(sentences))
        token_starts = np.fromiter((start for start, _ in offsets), dtype=np.int64, count=len(offsets))
        token_sentence = np.searchsorted(starts, token_starts, side="right") - 1
        passages.append(
            TokenizedPassage(
                token_ids=np.concatenate([title, np.asarray(ids, dtype=np.int64)]),
                token_sentence=np.concatenate([np.full(len(title), NO_SENTENCE), token_sentence]),
                sentences=sentences,
                title_length=len(title),
            )
        )
    return passages


def _tokenize_titles(tokenizer: PreTrainedTokenizerBase, titles: list[str]) -> list[np.ndarray]:
    empty = np.zeros(0, dtype=np.int64)
    with_title = [i for i, title in enumerate(titles) if not is_blank(title)]
    out = [empty] * len(titles)
    if with_title:
        # verbose=False: long titles are expected here, they are cut to their share of the window
        encoded = tokenizer([titles[i] for i in with_title], add_special_tokens=False, verbose=False)
        for i, ids in zip(with_title, encoded["input_ids"]):
            out[i] = np.asarray(ids, dtype=np.int64)
    return out


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


def padded_width(length: int, window: int) -> int:
    """The width a row of ``length`` tokens is padded to: the next multiple of ``WIDTH_STEP``, at most
    ``max(length, window)``.

    It depends on the row's own length only, and rows are batched only with rows of the same width, so a
    pair's scores do not depend on what it is batched with: on CPU the attention over a padded row gives
    slightly different floats for different padding widths, and a matrix product whose row count is not a
    multiple of 4 computes its last rows on another code path, which a width in multiples of 8 tokens
    avoids. Sorting rows into these widths also pads less than padding each batch to its longest row.
    """
    return min(-(-length // WIDTH_STEP) * WIDTH_STEP, max(length, window))


def build_rows(
    query_ids: np.ndarray,
    passage: TokenizedPassage,
    template: PairTemplate,
    max_length: int,
) -> list[Row]:
    """The encoder rows of one pair: one row, or one per chunk when the passage is too long; none for a
    passage without tokens.

    The title is context for the score, repeated in every chunk, and never pruned; it keeps its first
    ``max_title_tokens`` tokens. The query must fit ``max_query_tokens`` (``process`` checks and truncates
    queries before preparing pairs). The limits are ``InputLimits.for_window(max_length, template.overhead)``.
    """
    limits = InputLimits.for_window(max_length, template.overhead)
    if len(query_ids) > limits.max_query_tokens:
        raise ValueError(
            f"the query is {len(query_ids)} tokens long; this model reads at most "
            f"{limits.max_query_tokens} query tokens"
        )
    if len(passage.token_ids) == passage.title_length:
        return []
    title = passage.token_ids[: min(passage.title_length, limits.max_title_tokens)]
    budget = limits.window - template.overhead - len(query_ids) - len(title)
    head = np.concatenate([template.prefix, query_ids, template.middle, title])
    head_types = np.concatenate(
        [
            np.full(len(template.prefix) + len(query_ids) + len(template.middle), template.query_type),
            np.full(len(title), template.passage_type),
        ]
    )
    head_sentences = np.full(len(head), NO_SENTENCE)
    rows = []
    for start, end in chunk_ranges(passage.token_sentence, passage.title_length, budget):
        body = passage.token_ids[start:end]
        tail_length = len(body) + len(template.suffix)
        rows.append(
            Row(
                input_ids=np.concatenate([head, body, template.suffix]).astype(np.int32),
                token_type_ids=np.concatenate(
                    [head_types, np.full(tail_length, template.passage_type)]
                ).astype(np.int8),
                sentence_ids=np.concatenate(
                    [
                        head_sentences,
                        passage.token_sentence[start:end],
                        np.full(len(template.suffix), NO_SENTENCE),
                    ]
                ).astype(np.int32),
            )
        )
    return rows


@dataclass(frozen=True)
class PreparedPair:
    """What the encoder needs for one (query, passage) pair: its rows (none when the passage has no
    token), the passage's sentences, and whether its title was cut to fit."""

    rows: list[Row]
    sentences: list[Span]
    title_truncated: bool = False


def prepare_pairs(
    tokenizer: PreTrainedTokenizerBase,
    template: PairTemplate,
    max_length: int,
    query_ids: list[np.ndarray],
    texts: list[str],
    titles: list[str],
) -> list[PreparedPair]:
    """Rows and sentences of each pair; ``query_ids[i]`` are the query tokens of pair ``i``."""
    passages = tokenize_passages(tokenizer, texts, titles)
    max_title_tokens = InputLimits.for_window(max_length, template.overhead).max_title_tokens
    return [
        PreparedPair(
            build_rows(query, passage, template, max_length),
            passage.sentences,
            passage.title_length > max_title_tokens,
        )
        for query, passage in zip(query_ids, passages)
    ]
