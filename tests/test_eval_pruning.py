from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragprune.data.pruning import PruningContext, PruningExample
from ragprune.evaluation.pruning import context_text, kept_sentences, score_example, score_pruning
from ragprune.text import split_sentences
from ragprune.types import Span


def example(
    example_id: str, contexts: list[tuple[list[str], list[int]]], answers: list[str]
) -> PruningExample:
    return PruningExample(
        id=example_id,
        source="test",
        question="q?",
        answers=answers,
        contexts=[PruningContext(title="", sentences=s, gold_sentence_ids=g) for s, g in contexts],
    )


# Hand-made examples; the expected numbers below are counted by hand.
# A: text "Paris is the capital of France. It has the Eiffel Tower. Berlin is in Germany."
#    sentences at (0,31) (32,56) (57,78); 6 + 5 + 4 = 15 words.
EX_A = example(
    "A",
    [(["Paris is the capital of France.", "It has the Eiffel Tower.", "Berlin is in Germany."], [0])],
    ["Paris"],
)
KEPT_A = [[Span(0, 31)]]  # the gold sentence only: R 1, P 1, 6 of 15 words kept
# B: HotpotQA-style leading spaces. ctx0 "Alpha one. Beta two. Gamma three." (0,10) (11,20) (21,33);
#    ctx1 "Delta four. Epsilon five." (0,11) (12,25); 10 words in all.
EX_B = example(
    "B",
    [(["Alpha one.", " Beta two.", " Gamma three."], [1]), (["Delta four.", "Epsilon five."], [0])],
    ["beta TWO"],
)
KEPT_B = [[Span(11, 20), Span(21, 33)], []]  # keeps Beta (gold) and Gamma; drops ctx1: R .5, P .5, 4/10 words
# C: no gold, no answers. "Nothing here. Still nothing." (0,13) (14,28); 4 words.
EX_C = example("C", [(["Nothing here.", "Still nothing."], [])], [])
KEPT_C = [[Span(0, 13)]]
# D: the answer sentence is dropped. "The answer is 42. Noise text here." (0,17) (18,34); 7 words.
EX_D = example("D", [(["The answer is 42.", "Noise text here."], [0])], ["42", "forty-two"])
KEPT_D = [[Span(18, 34)]]


def test_context_text_joins_sentences_and_strips_spans() -> None:
    text, spans = context_text(["Alpha one.", " Beta two.", " Gamma three."])
    assert text == "Alpha one. Beta two. Gamma three."
    assert spans == [Span(0, 10), Span(11, 20), Span(21, 33)]
    text, spans = context_text(
        ["Paris is the capital of France.", "It has the Eiffel Tower.", "Berlin is in Germany."]
    )
    assert text == "Paris is the capital of France. It has the Eiffel Tower. Berlin is in Germany."
    assert spans == [Span(0, 31), Span(32, 56), Span(57, 78)]


@pytest.mark.parametrize(
    ("sentences", "text", "spans"),
    [
        ([], "", []),
        (["a", "b"], "a b", [Span(0, 1), Span(2, 3)]),
        (["a\n", "b "], "a\nb ", [Span(0, 1), Span(2, 3)]),
        (["  a  ", "b"], "  a  b", [Span(2, 3), Span(5, 6)]),
        (["A b.", "", " C d."], "A b. C d.", [Span(0, 4), Span(4, 4), Span(5, 9)]),
        (["A b.", "   ", "C d."], "A b.   C d.", [Span(0, 4), Span(7, 7), Span(7, 11)]),
    ],
)
def test_context_text_edge_cases(sentences: list[str], text: str, spans: list[Span]) -> None:
    assert context_text(sentences) == (text, spans)


def test_a_sentence_is_kept_when_half_its_visible_characters_are() -> None:
    text, spans = context_text(["abcd efgh", "ijkl"])  # 8 visible characters, then 4
    assert kept_sentences(text, spans, [Span(0, 5)]) == [True, False]  # "abcd " = 4 of 8
    assert kept_sentences(text, spans, [Span(0, 3)]) == [False, False]  # 3 of 8
    assert kept_sentences(text, spans, [Span(3, 6)]) == [False, False]  # "d e" = 2 of 8
    assert kept_sentences(text, spans, [Span(5, 12)]) == [True, True]  # "efgh" 4 of 8, "ij" 2 of 4
    assert kept_sentences(text, spans, [Span(4, 9), Span(0, 6), Span(2, 3)]) == [True, False]  # merged
    assert kept_sentences(text, spans, []) == [False, False]
    assert kept_sentences(text, [Span(4, 5), Span(9, 9)], [Span(0, 14)]) == [False, False]  # nothing visible


def test_per_example_scores() -> None:
    a = score_example(EX_A, KEPT_A)
    assert (a.sentences, a.gold_sentences, a.kept_sentences, a.kept_gold_sentences) == (3, 1, 1, 1)
    assert (a.recall, a.precision, a.f1) == (1.0, 1.0, 1.0)
    assert (a.tokens, a.kept_tokens) == (15, 6)
    assert a.compression == pytest.approx(9 / 15)
    assert a.answer_in_context and a.answer_kept

    b = score_example(EX_B, KEPT_B)
    assert (b.sentences, b.gold_sentences, b.kept_sentences, b.kept_gold_sentences) == (5, 2, 2, 1)
    assert (b.recall, b.precision, b.f1) == (0.5, 0.5, 0.5)
    assert (b.tokens, b.kept_tokens, b.compression) == (10, 4, pytest.approx(0.6))
    assert b.answer_kept is True  # case-insensitive

    c = score_example(EX_C, KEPT_C)
    assert (c.recall, c.precision, c.f1) == (None, None, None)
    assert c.compression == pytest.approx(0.5)
    assert (c.answer_in_context, c.answer_kept) == (False, None)

    d = score_example(EX_D, KEPT_D)
    assert (d.recall, d.precision, d.f1) == (0.0, 0.0, 0.0)
    assert d.compression == pytest.approx(4 / 7)
    assert (d.answer_in_context, d.answer_kept) == (True, False)


def test_report_macro_averages() -> None:
    report = score_pruning([EX_A, EX_B, EX_C, EX_D], [KEPT_A, KEPT_B, KEPT_C, KEPT_D])
    assert (report.examples, report.examples_with_gold, report.examples_with_answer_in_context) == (4, 3, 3)
    # recall/precision/F1 over A, B, D (C has no gold); compression over all four
    assert report.recall == pytest.approx((1 + 0.5 + 0) / 3)
    assert report.precision == pytest.approx((1 + 0.5 + 0) / 3)
    assert report.f1 == pytest.approx((1 + 0.5 + 0) / 3)
    assert report.compression == pytest.approx((9 / 15 + 0.6 + 0.5 + 4 / 7) / 4)
    assert report.answer_retention == pytest.approx(2 / 3)
    assert (report.sentences, report.gold_sentences, report.kept_sentences, report.kept_gold_sentences) == (
        12,
        4,
        5,
        2,
    )
    out = json.loads(json.dumps(report.to_dict()))
    assert out["recall"] == pytest.approx(0.5)
    assert [row["example_id"] for row in out["per_example"]] == ["A", "B", "C", "D"]
    assert "per_example" not in report.to_dict(per_example=False)


def test_non_gold_dropped_inside_gold_passages() -> None:
    # A: one gold passage, both non-gold sentences dropped -> 2 / 2
    a = score_example(EX_A, KEPT_A)
    assert (a.gold_passage_non_gold, a.gold_passage_non_gold_dropped, a.non_gold_dropped) == (2, 2, 1.0)
    # B: both contexts hold a gold sentence. ctx0: Alpha dropped, Gamma kept; ctx1: Epsilon dropped -> 2 / 3
    b = score_example(EX_B, KEPT_B)
    assert (b.gold_passage_non_gold, b.gold_passage_non_gold_dropped) == (3, 2)
    assert b.non_gold_dropped == pytest.approx(2 / 3)
    # C: no gold passage -> undefined; D: the only non-gold sentence is kept -> 0 / 1
    c = score_example(EX_C, KEPT_C)
    assert (c.gold_passage_non_gold, c.non_gold_dropped) == (0, None)
    d = score_example(EX_D, KEPT_D)
    assert (d.gold_passage_non_gold, d.gold_passage_non_gold_dropped, d.non_gold_dropped) == (1, 0, 0.0)
    report = score_pruning([EX_A, EX_B, EX_C, EX_D], [KEPT_A, KEPT_B, KEPT_C, KEPT_D])
    assert report.examples_with_gold_passage_non_gold == 3
    assert report.non_gold_dropped == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert (report.gold_passage_non_gold, report.gold_passage_non_gold_dropped) == (6, 4)
    assert report.to_dict(False)["non_gold_dropped"] == pytest.approx(5 / 9)


def test_non_gold_sentences_outside_gold_passages_do_not_count() -> None:
    # ctx0 is a gold passage of gold only; ctx1 (no gold) has two non-gold sentences, both dropped.
    ex = example("N", [(["Gold here."], [0]), (["Other one.", "Other two."], [])], [])
    scores = score_example(ex, [[Span(0, 10)], []])
    assert (scores.gold_passage_non_gold, scores.non_gold_dropped) == (0, None)
    assert math.isnan(score_pruning([ex], [[[Span(0, 10)], []]]).non_gold_dropped)


def test_precision_differs_from_recall() -> None:
    # 1 gold of 4 sentences; keep gold + 2 others -> R 1, P 1/3, F1 = 2 * (1/3) / (4/3) = 0.5
    ex = example("P", [(["g one.", "x two.", "y three.", "z four."], [0])], [])
    text, spans = context_text(ex.contexts[0].sentences)
    scores = score_example(ex, [[spans[0], spans[1], spans[3]]])
    assert (scores.recall, scores.precision, scores.f1) == (1.0, pytest.approx(1 / 3), pytest.approx(0.5))


def test_keeping_nothing() -> None:
    scores = score_example(EX_A, [[]])
    assert (scores.recall, scores.precision, scores.f1, scores.compression) == (0.0, 0.0, 0.0, 1.0)
    assert scores.answer_kept is False


def test_segmentation_agnostic_spans() -> None:
    # The pruner keeps one span that covers most of sentence 0 and a sliver of sentence 1.
    # "Paris is the capital of France." has 26 visible characters; (3, 34) keeps 23 of them and
    # "It" (2 of 20 visible characters) of the next sentence.
    scores = score_example(EX_A, [[Span(3, 34)]])
    assert (scores.kept_sentences, scores.kept_gold_sentences) == (1, 1)
    assert scores.kept_tokens == 7  # "Paris" (partly kept) .. "France." and "It"
    assert scores.answer_kept is False  # "Paris" is cut


def test_spans_from_the_projects_own_splitter_map_back_to_dataset_sentences() -> None:
    ex = example(
        "S", [(["Dr. Who met Mr. Smith.", "They left at 5 p.m. on Monday.", "Rain fell."], [1])], ["p.m."]
    )
    text, _ = context_text(ex.contexts[0].sentences)
    own = split_sentences(text)
    assert len(own) == 3
    scores = score_example(ex, [[own[1]]])
    assert (scores.recall, scores.precision, scores.answer_kept) == (1.0, 1.0, True)


def test_empty_gold_sentence_is_ignored() -> None:
    ex = example("E", [(["A b.", "", " C d."], [1, 2])], [])
    scores = score_example(ex, [[Span(5, 9)]])
    assert (scores.sentences, scores.gold_sentences, scores.kept_gold_sentences) == (2, 1, 1)
    assert scores.recall == 1.0


def test_answer_may_span_kept_neighbours_but_not_a_dropped_sentence() -> None:
    ex = example("F", [(["It is red.", "Fish are blue.", "Sky is grey."], [0])], ["red. fish"])
    assert score_example(ex, [[Span(0, 10), Span(11, 25)]]).answer_kept is True
    assert score_example(ex, [[Span(0, 10), Span(26, 38)]]).answer_kept is False
    bridged = example("G", [(["It is red.", "Fish are blue.", "Sky is grey."], [0])], ["red. sky"])
    assert score_example(bridged, [[Span(0, 10), Span(26, 38)]]).answer_in_context is False


def test_answers_do_not_match_across_contexts() -> None:
    ex = example("H", [(["I like New"], [0]), (["York is big."], [])], ["new york"])
    assert score_example(ex, [[Span(0, 10)], [Span(0, 12)]]).answer_in_context is False


def test_undefined_means_are_nan_and_null_in_json() -> None:
    report = score_pruning([EX_C], [KEPT_C])
    assert math.isnan(report.recall) and math.isnan(report.answer_retention)
    assert report.compression == pytest.approx(0.5)
    out = report.to_dict()
    assert out["recall"] is None and out["f1"] is None and out["answer_retention"] is None
    empty = score_pruning([], [])
    assert empty.examples == 0 and math.isnan(empty.compression)


def test_bad_input_is_reported_clearly() -> None:
    with pytest.raises(ValueError, match="kept spans for 1 examples, but 2"):
        score_pruning([EX_A, EX_C], [KEPT_A])
    with pytest.raises(ValueError, match="example 'B': kept spans for 1 contexts, but it has 2"):
        score_example(EX_B, [[]])
    with pytest.raises(
        ValueError, match=r"example 'A', context 0: span \(0, 79\) ends past the context text"
    ):
        score_example(EX_A, [[Span(0, 79)]])
    with pytest.raises(TypeError, match="expected Span objects"):
        score_example(EX_A, [[(0, 5)]])  # type: ignore[list-item]


_SENTENCE = st.text(alphabet="ab .\n", min_size=0, max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(_SENTENCE, min_size=1, max_size=8), st.data())
def test_keep_all_and_keep_none_bounds(sentences: list[str], data: st.DataObject) -> None:
    gold = data.draw(st.lists(st.integers(0, len(sentences) - 1), unique=True))
    ex = example("X", [(sentences, gold)], [])
    text, spans = context_text(sentences)
    assert all(not s or (s.slice(text) == sentences[i].strip()) for i, s in enumerate(spans))
    everything = score_example(ex, [[Span(0, len(text))]])
    nothing = score_example(ex, [[]])
    visible = sum(1 for s in sentences if s.strip())
    visible_gold = sum(1 for i in gold if sentences[i].strip())
    assert everything.kept_sentences == visible and nothing.kept_sentences == 0
    assert everything.kept_tokens == everything.tokens == len(text.split())
    if everything.tokens:
        assert (everything.compression, nothing.compression) == (0.0, 1.0)
    if visible_gold and visible > visible_gold:
        assert (everything.non_gold_dropped, nothing.non_gold_dropped) == (0.0, 1.0)
    else:
        assert everything.non_gold_dropped is None
    if visible_gold:
        assert (everything.recall, nothing.recall) == (1.0, 0.0)
        assert everything.precision == pytest.approx(visible_gold / visible)
    else:
        assert everything.recall is None
