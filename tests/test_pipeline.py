from __future__ import annotations

import math

import pytest

from ragprune import Document, Query
from ragprune.pipeline import RerankPruner

PASSAGES = [
    "Fleas live up to a year. Their life cycle depends on temperature.",
    "The Eiffel Tower is in Paris. It was finished in 1889.",
    "Cats sleep a lot.",
]


def test_process_scores_ranks_and_keeps_every_passage(pruner):
    result = pruner.process("how long do fleas live", PASSAGES)
    assert sorted(p.index for p in result) == [0, 1, 2]
    assert [p.rank for p in result] == [1, 2, 3]
    logits = [p.logit for p in result]
    assert logits == sorted(logits, reverse=True)
    for passage in result:
        assert passage.document.text == PASSAGES[passage.index]
        assert 0.0 < passage.probability < 1.0
        assert passage.chunks == 1 and not passage.chunked


def test_spans_are_offsets_into_the_original_text(pruner):
    result = pruner.process("fleas", PASSAGES, threshold=0.0, reorder=False)
    for passage in result:
        text = passage.document.text
        assert [s.kept for s in passage.sentences] == [True] * len(passage.sentences)
        assert passage.pruned_text == text.strip()
        assert passage.kept_spans == [passage.kept_spans[0]] and passage.compression == pytest.approx(0.0)
    nothing = pruner.process("fleas", PASSAGES, threshold=1.0)
    assert all(p.pruned_text == "" and p.kept_spans == [] and p.compression == 1.0 for p in nothing)


def test_pruned_text_is_derived_from_kept_sentences(pruner):
    result = pruner.process("fleas", PASSAGES[:1], reorder=False)
    passage = result.passages[0]
    scores = [s.score for s in passage.sentences]
    threshold = sorted(scores)[0] + (sorted(scores)[1] - sorted(scores)[0]) / 2
    pruned = pruner.process("fleas", PASSAGES[:1], threshold=threshold).passages[0]
    kept = [s for s in pruned.sentences if s.kept]
    assert len(kept) == 1
    assert pruned.pruned_text == kept[0].span.slice(PASSAGES[0])


def test_ids_titles_and_metadata_survive(pruner):
    docs = [
        Document("d1", PASSAGES[0], title="Fleas", metadata={"url": "u1", "n": 1}),
        {"id": "d2", "text": PASSAGES[1], "source": "web"},
    ]
    result = pruner.process(Query("q7", "fleas"), docs)
    assert result.query.id == "q7"
    by_id = {p.document.id: p for p in result}
    assert by_id["d1"].document.metadata == {"url": "u1", "n": 1} and by_id["d1"].document.title == "Fleas"
    assert by_id["d2"].document.metadata == {"source": "web"}
    payload = result.to_dict()
    assert {p["id"] for p in payload["passages"]} == {"d1", "d2"}


def test_empty_passages_sort_last_and_keep_nothing(pruner):
    result = pruner.process("fleas", ["", PASSAGES[0], "   \n"])
    assert [p.index for p in result][-2:] == [0, 2]
    for passage in result.passages[-2:]:
        assert passage.logit == -math.inf and passage.probability == 0.0 and passage.kept_spans == []
        assert passage.to_dict()["logit"] is None


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_is_an_error(pruner, query):
    with pytest.raises(ValueError, match="is empty; pass the question text"):
        pruner.process(query, PASSAGES)


def test_mismatched_batch_is_an_error(pruner):
    with pytest.raises(ValueError, match="got 2 queries but 1 passage lists"):
        pruner.process(["a", "b"], [PASSAGES])


def test_single_passage_string_is_an_error(pruner):
    with pytest.raises(TypeError, match="not a single passage"):
        pruner.process("q", PASSAGES[0])


def test_batch_of_queries_matches_single_calls(pruner):
    queries = ["how long do fleas live", "where is the eiffel tower"]
    batched = pruner.process(queries, [PASSAGES, PASSAGES[::-1]])
    for query, passages, result in zip(queries, [PASSAGES, PASSAGES[::-1]], batched):
        single = pruner.process(query, passages)
        assert [p.document.id for p in single] == [p.document.id for p in result]
        for a, b in zip(single, result):
            assert a.logit == pytest.approx(b.logit, abs=1e-4)
            assert [s.score for s in a.sentences] == pytest.approx([s.score for s in b.sentences], abs=1e-5)


def test_top_k_and_input_order(pruner):
    ranked = pruner.process("fleas", PASSAGES, top_k=2)
    assert [p.rank for p in ranked] == [1, 2]
    in_order = pruner.process("fleas", PASSAGES, top_k=2, reorder=False)
    assert [p.index for p in in_order] == sorted(p.index for p in ranked)
    with pytest.raises(ValueError, match="top_k=0"):
        pruner.process("fleas", PASSAGES, top_k=0)


def test_long_passage_is_chunked_not_truncated(pruner):
    sentences = [f"Sentence number {i} talks about fleas and their long life cycle." for i in range(40)]
    long_text = " ".join(sentences)
    passage = pruner.process("fleas", [long_text], threshold=0.0).passages[0]
    assert passage.chunked and passage.chunks > 3
    assert len(passage.sentences) == 40
    assert passage.pruned_text == long_text
    assert math.isfinite(passage.logit)


def test_one_overlong_sentence_is_cut_and_scored_whole(pruner):
    words = " ".join(f"word{i}" for i in range(300))
    passage = pruner.process("fleas", [words + "."], threshold=0.0).passages[0]
    assert passage.chunks > 1 and len(passage.sentences) == 1 and passage.sentences[0].kept


def test_results_are_deterministic(pruner):
    first = pruner.process("fleas", PASSAGES).to_dict()
    assert pruner.process("fleas", PASSAGES).to_dict() == first


def test_parallel_row_preparation_gives_the_same_results(tiny_model_dir, monkeypatch):
    from ragprune.pipeline import parallel, runner

    monkeypatch.setattr(parallel, "SHARD_PAIRS", 4)
    passages = [f"{text} Extra sentence {i}." for i, text in enumerate(PASSAGES * 4)]
    serial = RerankPruner.load(tiny_model_dir, device="cpu", prepare_workers=0, batch_size=1)
    # batches of 1 row: 12 pairs in shards of 4 are encoded in windows of at least an eighth of the call
    # (so each shard as it arrives), or with one window for the call, of ENCODE_WINDOW_BATCHES = 8 pairs
    # (then the last 4), while later shards are still being prepared
    expected = {8: [range(0, 4), range(4, 8), range(8, 12)], 1: [range(0, 8), range(8, 12)]}
    with RerankPruner.load(tiny_model_dir, device="cpu", prepare_workers=2, batch_size=1) as forked:
        windows = []
        run_window = forked.runner._run_window
        monkeypatch.setattr(
            forked.runner,
            "_run_window",
            lambda block, first, *rest: (
                windows.append(range(first, first + len(block))),
                run_window(block, first, *rest),
            ),
        )
        for min_windows, seen in expected.items():
            monkeypatch.setattr(runner, "MIN_WINDOWS", min_windows)
            windows.clear()
            assert forked.process("fleas", passages).to_dict() == serial.process("fleas", passages).to_dict()
            assert windows == seen


def test_an_error_mid_stream_leaves_the_worker_pool_usable(tiny_model_dir, monkeypatch):
    from ragprune.pipeline import parallel

    monkeypatch.setattr(parallel, "SHARD_PAIRS", 4)
    passages = [f"{text} Extra sentence {i}." for i, text in enumerate(PASSAGES * 4)]
    with RerankPruner.load(tiny_model_dir, device="cpu", prepare_workers=2, batch_size=1) as forked:
        expected = forked.process("fleas", passages).to_dict()
        run_window = forked.runner._run_window

        def fail_once(*args):
            monkeypatch.setattr(forked.runner, "_run_window", run_window)
            raise RuntimeError("encoder failed")

        monkeypatch.setattr(forked.runner, "_run_window", fail_once)
        with pytest.raises(RuntimeError, match="encoder failed"):
            forked.process("fleas", passages)
        assert forked.process("fleas", passages).to_dict() == expected


def test_long_titles_are_capped_and_never_pruned(pruner):
    title = " ".join(f"title{i}" for i in range(200))
    passage = pruner.process("fleas", [Document("d", PASSAGES[0], title=title)], threshold=0.0).passages[0]
    assert passage.chunks == 1 and passage.pruned_text == PASSAGES[0]


def test_no_queries_give_no_results(pruner):
    assert pruner.process([], []) == []


def test_progress_counts_pairs_batch_by_batch(tiny_model_dir, monkeypatch):
    from contextlib import nullcontext

    updates = []

    class Counter:
        def update(self, n):
            updates.append(n)

    pruner = RerankPruner.load(tiny_model_dir, device="cpu", prepare_workers=0, batch_size=2)
    monkeypatch.setattr(pruner.runner, "_progress_bar", lambda pairs, show: nullcontext(Counter()))
    pruner.process("fleas", [f"{text} ({i})" for i, text in enumerate(PASSAGES * 2)])
    assert updates == [2] * (len(PASSAGES * 2) // 2)


def test_passage_ids_none_is_the_position_and_odd_ids_are_refused(pruner):
    result = pruner.process("fleas", [{"id": None, "text": "a"}, {"id": 7, "text": "b"}], reorder=False)
    assert [p.document.id for p in result] == ["0", "7"]
    for bad in ([1], True, 2.5, {"x": 1}):
        with pytest.raises(ValueError, match="passage 0: 'id' must be a string or an integer"):
            pruner.process("fleas", [{"id": bad, "text": "a"}])


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan")])
def test_thresholds_outside_the_unit_interval_are_refused_in_python(pruner, threshold, tiny_model_dir):
    with pytest.raises(ValueError, match=r"outside \[0, 1\]; thresholds are probabilities"):
        pruner.process("how long do fleas live", ["Fleas live up to a year."], threshold=threshold)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        RerankPruner.load(tiny_model_dir, device="cpu", threshold=threshold)
