"""Unit tests for the pure helpers of training/build_data.py and the teacher ensembles it uses
(``ragprune.training.ensembles``); no models, no shared data."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from ragprune.training.ensembles import combine, rrf, zscore
from ragprune.types import Span

_SCRIPT = Path(__file__).resolve().parents[1] / "training" / "build_data.py"


@pytest.fixture(scope="module")
def bd():
    spec = importlib.util.spec_from_file_location("build_data_under_test", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_window_text_spans_cover_each_sentence(bd):
    sentences = ["First one.", " Second starts with a space.", "Third ends with space.  \n", "", "Last"]
    text, spans = bd.window_text(sentences)
    assert text == "First one. Second starts with a space. Third ends with space.  \nLast"
    assert [None if s is None else text[s.start : s.end] for s in spans] == [
        "First one.",
        "Second starts with a space.",
        "Third ends with space.",
        None,
        "Last",
    ]


def test_window_text_strips_outer_whitespace_and_shifts_spans(bd):
    text, spans = bd.window_text(["  Lead.", " ", "Next.  \n"])
    assert text == "Lead. Next."
    assert spans == [Span(0, 5), None, Span(6, 11)]


def test_gold_spans_skips_empty_sentences(bd):
    assert bd.gold_spans([Span(3, 5), None, Span(0, 2)], [0, 1, 2]) == [Span(0, 2), Span(3, 5)]


def test_sentence_windows_cover_all_sentences_in_order(bd):
    sentences = ["x" * 300] * 7 + ["y" * 2000, "z"]
    windows = bd.sentence_windows(sentences, max_chars=800)
    assert [i for w in windows for i in w] == list(range(len(sentences)))
    assert all(len(w) >= 1 for w in windows)
    assert all(sum(len(sentences[i]) + 1 for i in w) <= 800 or len(w) == 1 for w in windows)


def _context_labels(bd, source, sentences, gold_ids):
    pool, group = bd.Pool(), bd.Group("q", "question", source)
    bd.add_context(pool, group, sentences, gold_ids, "ctx")
    texts = {pid: passage.text for pid, passage in pool.passages.items()}
    labels = [group.labels.get(pid) for pid in texts]
    gold = {texts[pid]: [texts[pid][s.start : s.end] for s in spans] for pid, spans in group.gold.items()}
    return labels, gold


def test_add_context_windows_long_relevant_documents(bd):
    sentences = [f"Sentence number {i} " + "w" * 280 + "." for i in range(6)]
    labels, gold = _context_labels(bd, "scifact", sentences, [4])
    assert labels == [None, None, 1]  # windows of 2 sentences; only the gold window is labelled
    assert list(gold.values()) == [[sentences[4]]]


def test_add_context_labels_by_source(bd):
    short = ["One answer.", "Other text."]
    assert _context_labels(bd, "nq", short, [])[0] == [1]  # gold passage whose answer sentence is unknown
    assert _context_labels(bd, "hotpotqa", short, [])[0] == [0]  # distractor paragraph
    assert _context_labels(bd, "wikiqa", short, [0]) == ([1], {"One answer. Other text.": ["One answer."]})
    long = ["a" * 500 + ".", "b" * 500 + ".", "c" * 500 + "."]
    assert _context_labels(bd, "trecqa", long, [1])[0] == [0, 1, 0]


def test_pool_dedupes_by_text_and_keeps_every_original_id(bd):
    pool = bd.Pool()
    a = pool.add("same text", "nq", "nq-1")
    b = pool.add("same text", "wikiqa", "wikiqa:3")
    c = pool.add("other text", "nq", "nq-2")
    assert a == b != c
    assert pool.passages[a].ids == ["nq-1", "wikiqa:3"] and pool.passages[a].source == "nq"
    assert a == bd.Pool.pid_of("same text")


def test_add_labelled_merges_labels_and_gold(bd):
    group = bd.Group("q", "query", "hotpotqa")
    bd.add_labelled(group, "p1", 0, None)
    bd.add_labelled(group, "p1", 1, [Span(4, 9)])
    bd.add_labelled(group, "p1", 0, [Span(0, 3), Span(4, 9)])
    assert group.labels == {"p1": 1}
    assert group.gold == {"p1": [Span(0, 3), Span(4, 9)]}


def test_held_out_is_deterministic_and_near_share(bd):
    picks = [bd.held_out(f"nq:{i}", seed=13, share=0.1) for i in range(5000)]
    assert picks == [bd.held_out(f"nq:{i}", seed=13, share=0.1) for i in range(5000)]
    assert 0.08 < np.mean(picks) < 0.12
    assert picks != [bd.held_out(f"nq:{i}", seed=14, share=0.1) for i in range(5000)]


def test_combine_z_and_rrf():
    feats = {"mpnet": np.array([0.9, 0.5, 0.1]), "minilm": np.array([0.2, 0.6, 0.4])}
    z = combine(("z", {"mpnet": 1, "minilm": 1}), feats)
    expected = (zscore(feats["mpnet"]) + zscore(feats["minilm"])) / 2
    np.testing.assert_allclose(z, expected)
    assert np.isclose(z.mean(), 0.0)
    fused = combine(("rrf", {"mpnet": 1, "minilm": 1}), feats)
    np.testing.assert_allclose(fused, [(1 / 61 + 1 / 63) / 2, (1 / 62 + 1 / 61) / 2, (1 / 63 + 1 / 62) / 2])
    assert combine(("raw", {"mpnet": 1.0}), feats) is feats["mpnet"]
    with pytest.raises(ValueError, match="unknown ensemble kind"):
        combine(("max", {"mpnet": 1.0}), feats)


def test_rrf_breaks_ties_by_position():
    np.testing.assert_allclose(rrf(np.array([1.0, 1.0, 2.0])), [1 / 62, 1 / 63, 1 / 61])


def test_normalise_query_ignores_case_and_punctuation(bd):
    assert bd.normalise_query("What is  RAG?") == bd.normalise_query("what is rag")
