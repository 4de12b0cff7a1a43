"""The flat (columnar) host path of ``process``: tokenization into flat arrays, token-to-sentence mapping,
row layout, padding, prepared shards and lazy sentence views, each checked against a plain per-item oracle
(the way the pipeline computed them one object at a time)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
from tiny_models import minilm_tokenizer_path

from ragprune.pipeline.collate import pad_block, pad_rows
from ragprune.pipeline.encoding import (
    CUDA_WIDTH_STEP,
    NO_SENTENCE,
    WIDTH_STEP,
    PairTemplate,
    Row,
    chunk_ranges,
    layout_rows,
    padded_width,
    tokenize_pairs,
    tokenize_texts,
)
from ragprune.pipeline.prepared import PreparedShard, prepare_shard
from ragprune.pipeline.results import PassageResult, SentenceScore, SentenceView
from ragprune.pipeline.rows import RowBlock
from ragprune.text import split_sentences
from ragprune.types import Document, InputLimits, Span

TRICKY = [
    "Fleas live up to a year. Their life cycle depends on temperature. Cats sleep a lot.",
    "Ünïcödé naïve café — “quotes” and emoji 🐈‍⬛ here. 東京は日本の首都です。大阪も大きい！本当？ Ok.",
    "zero\u200bwidth\u200b joiner\ufeff text. Soft\xadhyphen. \x1c\x1d control chars. \ufffd End.",
    "   \n\n  . . .  \n\n - item one\n - item two\n\n```\ncode block. Not split.\n```\nAfter.",
    " ".join(f"Sentence number {i} of a long passage about fleas and ticks." for i in range(40)),
    "word " * 300,
    "\u200b\u200b",
    "",
    "A.",
    "Dr. Smith went to Washington D.C. on Jan. 5 at 3 p.m. The U.S. Army was there.fleas.The end",
]
TITLES = ["", "A title", "a very long title " * 30, "", "\u200b", "T", "", "", "Title", ""]
WINDOW = 64


@pytest.fixture(scope="module")
def tokenizer():
    from ragprune.models import load_tokenizer

    return load_tokenizer(minilm_tokenizer_path())


def test_tokenize_texts_gives_the_transformers_call_tokens_and_offsets(tokenizer):
    flat = tokenize_texts(tokenizer, TRICKY)
    expected = tokenizer(TRICKY, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    for i, (ids, offsets) in enumerate(zip(expected["input_ids"], expected["offset_mapping"])):
        piece = slice(flat.offsets[i], flat.offsets[i + 1])
        assert flat.ids[piece].tolist() == ids
        assert flat.starts[piece].tolist() == [start for start, _ in offsets]


def test_a_truncating_backend_goes_through_the_transformers_call(tokenizer):
    truncating = copy.deepcopy(tokenizer)
    truncating.backend_tokenizer.enable_truncation(4)
    flat = tokenize_texts(truncating, TRICKY[:1])
    assert flat.ids.tolist() == tokenize_texts(tokenizer, TRICKY[:1]).ids.tolist()


def test_tokens_map_to_the_sentence_their_first_character_falls_in(tokenizer):
    tokens = tokenize_pairs(tokenizer, TRICKY, TITLES)
    expected = tokenizer(TRICKY, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    for p, (text, offsets) in enumerate(zip(TRICKY, expected["offset_mapping"])):
        spans = split_sentences(text)
        starts = np.array([span.start for span in spans], dtype=np.int64)
        oracle = np.searchsorted(starts, [start for start, _ in offsets], side="right") - 1
        body = slice(tokens.bodies.offsets[p], tokens.bodies.offsets[p + 1])
        assert tokens.token_sentence[body].tolist() == oracle.tolist()
        sentences = tokens.sentences[tokens.sentence_offsets[p] : tokens.sentence_offsets[p + 1]]
        assert [Span(a, b) for a, b in sentences.tolist()] == spans


def _rows_by_hand(template, query, title, body, body_sentence, max_length):
    """The encoder rows of one pair, concatenated piece by piece."""
    limits = InputLimits.for_window(max_length, template.overhead)
    title = title[: limits.max_title_tokens]
    budget = limits.window - template.overhead - len(query) - len(title)
    if not len(body):
        return []
    head = [*template.prefix, *query, *template.middle]
    rows = []
    for start, end in chunk_ranges(body_sentence, 0, budget):
        ids = head + [*title, *body[start:end], *template.suffix]
        types = [template.query_type] * len(head) + [template.passage_type] * (len(ids) - len(head))
        sentences = [NO_SENTENCE] * (len(head) + len(title)) + [*body_sentence[start:end]]
        rows.append((ids, types, sentences + [NO_SENTENCE] * len(template.suffix)))
    return rows


def test_layout_rows_matches_rows_built_one_pair_at_a_time(tokenizer):
    template = PairTemplate.from_tokenizer(tokenizer)
    queries = [np.array(tokenizer("how long do fleas live", add_special_tokens=False)["input_ids"])]
    longest = InputLimits.for_window(WINDOW, template.overhead).max_query_tokens
    queries.append(np.arange(1000, 1000 + longest))  # the longest query the window allows
    query_ids = [queries[p % 2] for p in range(len(TRICKY))]
    tokens = tokenize_pairs(tokenizer, TRICKY, TITLES)
    block, pair_rows = layout_rows(template, WINDOW, query_ids, tokens)
    chunked = 0
    for p, query in enumerate(query_ids):
        body = slice(tokens.bodies.offsets[p], tokens.bodies.offsets[p + 1])
        title = tokens.titles.ids[tokens.titles.offsets[p] : tokens.titles.offsets[p + 1]]
        expected = _rows_by_hand(
            template, query, title, tokens.bodies.ids[body], tokens.token_sentence[body], WINDOW
        )
        rows = [block.row(r) for r in range(pair_rows[p], pair_rows[p + 1])]
        got = [(r.input_ids.tolist(), r.token_type_ids.tolist(), r.sentence_ids.tolist()) for r in rows]
        assert got == [tuple(map(list, row)) for row in expected]
        assert all(len(r.input_ids) <= WINDOW for r in rows)
        chunked += len(rows) > 1
    assert chunked >= 2 and (np.diff(pair_rows) == 0).any()  # long passages chunked, blank ones no row


def test_layout_rows_refuses_a_query_longer_than_its_share(tokenizer):
    template = PairTemplate.from_tokenizer(tokenizer)
    tokens = tokenize_pairs(tokenizer, TRICKY[:1], [""])
    limit = InputLimits.for_window(WINDOW, template.overhead).max_query_tokens
    with pytest.raises(ValueError, match=f"at most {limit} query tokens"):
        layout_rows(template, WINDOW, [np.arange(limit + 1)], tokens)


def test_pad_block_equals_padding_row_by_row():
    rng = np.random.default_rng(0)
    rows = []
    for n in (5, 1, 9, 3):
        sentences = rng.integers(-1, 3, n).astype(np.int32)
        rows.append(
            Row(rng.integers(1, 99, n).astype(np.int32), rng.integers(0, 2, n).astype(np.int8), sentences)
        )
    offsets = [0, 3, 4, 7]
    padded = pad_rows(rows, pad_id=7, width=16, sentence_offsets=offsets)
    for r, row in enumerate(rows):
        n = len(row.input_ids)
        assert padded.input_ids[r].tolist() == row.input_ids.tolist() + [7] * (16 - n)
        assert padded.token_type_ids[r].tolist() == row.token_type_ids.tolist() + [0] * (16 - n)
        assert padded.attention_mask[r].tolist() == [1] * n + [0] * (16 - n)
        shifted = [s if s == NO_SENTENCE else s + offsets[r] for s in row.sentence_ids.tolist()]
        assert padded.sentence_ids[r].tolist() == shifted + [NO_SENTENCE] * (16 - n)
    some = pad_block(RowBlock.from_rows(rows), np.array([2, 0]), pad_id=7)
    assert some.input_ids.shape == (2, 9) and some.input_ids[1].tolist() == padded.input_ids[0, :9].tolist()
    with pytest.raises(ValueError, match="row 2 has 9 tokens, more than the batch width 8"):
        pad_rows(rows, pad_id=0, width=8)


def test_prepared_shards_round_trip_through_pairs_and_concatenate(tokenizer):
    template = PairTemplate.from_tokenizer(tokenizer)
    query = np.array(tokenizer("fleas", add_special_tokens=False)["input_ids"])
    shard = prepare_shard(tokenizer, template, WINDOW, [query] * len(TRICKY), TRICKY, TITLES)
    pairs = list(shard)
    assert [p.sentences for p in pairs] == [split_sentences(text) for text in TRICKY]
    assert [p.title_truncated for p in pairs] == [False, False, True] + [False] * 7
    again = PreparedShard.from_pairs(pairs)
    for field in dataclasses.fields(PreparedShard):
        if field.name != "rows":
            assert np.array_equal(getattr(again, field.name), getattr(shard, field.name))
    for name in ("input_ids", "token_type_ids", "sentence_ids", "offsets"):
        assert np.array_equal(getattr(again.rows, name), getattr(shard.rows, name))
    half = len(TRICKY) // 2
    first = prepare_shard(tokenizer, template, WINDOW, [query] * half, TRICKY[:half], TITLES[:half])
    second = prepare_shard(tokenizer, template, WINDOW, [query] * half, TRICKY[half:], TITLES[half:])
    joined = PreparedShard.concat([first, second])
    for p in range(len(TRICKY)):
        a, b = joined[p], shard[p]
        assert a.sentences == b.sentences and a.title_truncated == b.title_truncated
        assert [r.input_ids.tolist() for r in a.rows] == [r.input_ids.tolist() for r in b.rows]
        assert [r.sentence_ids.tolist() for r in a.rows] == [r.sentence_ids.tolist() for r in b.rows]


def test_a_sentence_view_reads_like_the_list_of_its_sentences():
    text = "Fleas live up to a year. Their life cycle depends on temperature.  Cats sleep a lot."
    bounds = np.array([[0, 24], [25, 65], [67, 84]], dtype=np.int64)
    scores = np.array([0.75, 0.25, 0.5], dtype=np.float32)
    kept = np.array([True, True, False])
    view = SentenceView(bounds, scores, kept)
    listed = [
        SentenceScore(Span(a, b), float(s), bool(k)) for (a, b), s, k in zip(bounds.tolist(), scores, kept)
    ]
    assert len(view) == 3 and list(view) == listed and view == listed and listed == view
    assert view[0] == listed[0] and view[-1] == listed[-1] and view[1:] == listed[1:]
    assert type(view[0].score) is float and type(view[0].kept) is bool and type(view[0].span.start) is int
    assert view.kept_bounds() == [(0, 24), (25, 65)] and repr(view) == repr(listed)
    for bad in (True, [0, 1], "0", 0.5):
        with pytest.raises(TypeError, match="sentence indices must be integers or slices"):
            view[bad]
    lazy = PassageResult(Document("d", text), 0, 1.0, 0.5, view, chunks=1)
    eager = PassageResult(Document("d", text), 0, 1.0, 0.5, listed, chunks=1)
    assert lazy == eager and lazy.to_dict() == eager.to_dict()
    assert lazy.kept_spans == [Span(0, 65)] and lazy.pruned_text == text[:65]
    flipped = dataclasses.replace(lazy, sentences=[dataclasses.replace(s, kept=not s.kept) for s in view])
    assert flipped.kept_spans == [Span(67, 84)]


def test_index_arrays_travel_to_the_device_in_one_packed_copy():
    import torch

    from ragprune.pipeline.runner import to_device_packed

    arrays = [np.arange(12).reshape(3, 4), np.ones((3, 4), np.int32), np.zeros(0, np.int64), np.array([5, 6])]
    tensors = to_device_packed(arrays, torch.device("cpu"), pin=False)
    assert [t.dtype for t in tensors] == [torch.int64] * 4
    for array, tensor in zip(arrays, tensors):
        assert tensor.shape == array.shape and tensor.is_contiguous()
        assert np.array_equal(tensor.numpy(), array)


def test_a_batch_read_back_unpacks_every_head_the_scores_and_the_flags():
    import torch

    from ragprune.pipeline.runner import _Launched

    rows, sentences = np.array([2, 1]), np.array([1, 2])  # pair 0: 2 rows, 1 sentence; pair 1: 1 row, 2
    values = [10.0, 11.0, 12.0, 20.0, 21.0, 22.0, 0.25, 0.5, 0.75, 1.0, 0.0, 1.0]
    launched = _Launched(
        pairs=np.array([0, 1]),
        row_counts=rows,
        sentence_counts=sentences,
        heads=["rank", "other"],
        outputs=torch.tensor(values),
        vectors=None,
        ready=None,
    )
    row_values, scores, kept = launched.split()
    assert {k: v.tolist() for k, v in row_values.items()} == {"rank": [10, 11, 12], "other": [20, 21, 22]}
    assert scores.tolist() == [0.25, 0.5, 0.75] and kept.tolist() == [True, False, True]
    short = dataclasses.replace(launched, outputs=torch.tensor(values[1:]))
    with pytest.raises(ValueError, match="one value per row"):
        short.split()


def test_collector_keeps_each_pairs_best_chunk_vector_in_mixed_batches():
    """Batches read back in length order, one mixing single-row and multi-row pairs: every pair's vector is
    the row with its highest rank logit, in pair order; a pair never encoded gets zeros."""
    import torch

    from ragprune.pipeline.runner import _Collector, _Launched

    def launched(pairs, row_counts, rank, vectors):
        return _Launched(
            pairs=np.array(pairs),
            row_counts=np.array(row_counts),
            sentence_counts=np.zeros(len(pairs), dtype=np.int64),
            heads=["rank"],
            outputs=torch.tensor(rank, dtype=torch.float32),
            vectors=torch.tensor(vectors, dtype=torch.float32),
            ready=None,
        )

    collector = _Collector(5, ["rank"], (2, torch.float32, torch.device("cpu")))
    # pairs 3, 0, 4 with 1, 3 and 1 rows: pair 0's best row is its second (rank 0.9)
    collector.add(
        launched([3, 0, 4], [1, 3, 1], [0.5, 0.1, 0.9, 0.2, 0.3], [[3, 3], [0, 1], [0, 2], [0, 3], [4, 4]])
    )
    collector.add(launched([1], [1], [0.7], [[1, 1]]))  # single-row pairs only: kept as they are
    collector.finish()
    columns = collector.columns()
    assert columns.vectors is not None
    assert columns.vectors.tolist() == [[0, 2], [1, 1], [0, 0], [3, 3], [4, 4]]  # pair 2: not encoded
    assert columns.scores["rank"].tolist()[:2] == pytest.approx([0.9, 0.7])
    empty = _Collector(2, ["rank"], (3, torch.float32, torch.device("cpu")))
    empty.finish()
    assert empty.columns().vectors.tolist() == [[0, 0, 0], [0, 0, 0]]
    assert _Collector(2, ["rank"]).columns().vectors is None


def test_rows_are_padded_in_coarser_steps_on_cuda_with_the_same_scores(tiny_model_dir, monkeypatch):
    import torch

    import ragprune.pipeline.runner as runner
    from ragprune.pipeline import RerankPruner

    widths: list[int] = []
    padding = runner.pad_block
    monkeypatch.setattr(
        runner,
        "pad_block",
        lambda block, rows, pad, width, offsets: (
            widths.append(width) or padding(block, rows, pad, width, offsets)
        ),
    )

    assert padded_width(np.array([5, 33, 64, 300]), 256, CUDA_WIDTH_STEP).tolist() == [32, 64, 64, 300]
    assert padded_width(np.array([5, 33, 64, 300]), 256).tolist() == [8, 40, 64, 300]
    texts = ["Fleas live up to a year. " * n + "Cats sleep." for n in range(1, 12)]
    with RerankPruner.load(tiny_model_dir, device="cpu") as pruner:
        assert pruner.runner.width_step == WIDTH_STEP  # the CPU pays padding in compute
        fine = pruner.process("how long do fleas live", texts, reorder=False)
        fine_widths, widths[:] = sorted(widths), []
        pruner.runner.width_step = CUDA_WIDTH_STEP  # what a CUDA runner uses: fewer, fuller batches
        coarse = pruner.process("how long do fleas live", texts, reorder=False)
    assert all(w % 32 == 0 for w in widths) and len(widths) < len(fine_widths)
    assert any(w % 32 for w in fine_widths)
    assert [p.logit for p in coarse] == pytest.approx([p.logit for p in fine], abs=1e-4)
    # the CUDA default is chosen by the device's type (no GPU needed to build a runner)
    options = dict(pad_id=0, batch_size=8, max_length=64, reduce="mean", scoring_backend="torch")
    model = pruner.model
    assert runner.Runner(model, None, device=torch.device("cuda:1"), **options).width_step == CUDA_WIDTH_STEP
    for bad in (0, -8, 12):
        with pytest.raises(ValueError, match="positive multiple of 8"):
            runner.Runner(model, None, device=torch.device("cpu"), width_step=bad, **options)
    assert [[s.kept for s in p.sentences] for p in coarse] == [[s.kept for s in p.sentences] for p in fine]
