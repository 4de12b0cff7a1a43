"""Spliced passages for the gold-position slice: seeded, same gold and fillers at every position."""

from __future__ import annotations

import pytest

from ragprune.data.pruning import PruningContext, PruningExample
from ragprune.evaluation.pruning import context_text, score_pruning
from ragprune.evaluation.splice import POSITIONS, spliced_position_examples
from ragprune.types import Span


def example(example_id: str, sentences: list[str], gold: list[int], answers: list[str]) -> PruningExample:
    return PruningExample(
        id=example_id,
        source="test",
        question=f"question {example_id}?",
        answers=answers,
        contexts=[PruningContext(title="", sentences=sentences, gold_sentence_ids=gold)],
    )


EXAMPLES = [
    example("a", ["A gold.", " A other."], [0], ["gold"]),
    example("b", ["B one.", "B two.", "B three mentions gold."], [1], []),
    example("c", ["C one.", "   ", "C three."], [], []),  # no gold: skipped, but lends fillers
    example("d", ["D one.", "D two."], [1], []),
]


def test_positions_hold_the_same_gold_and_fillers_in_order() -> None:
    spliced = spliced_position_examples(EXAMPLES, seed=1, min_fillers=2, max_fillers=2)
    assert [ex.id for ex in spliced["first"]] == ["a/first", "b/first", "d/first"]
    for first, middle, last in zip(*(spliced[p] for p in POSITIONS), strict=True):
        (f,), (m,), (la,) = first.contexts, middle.contexts, last.contexts
        gold, fillers = f.sentences[0], f.sentences[1:]
        assert len(fillers) == 2 and first.extra == {"fillers": 2, "gold_position": 0}
        assert m.sentences == [fillers[0], gold, fillers[1]] and m.gold_sentence_ids == [1]
        assert la.sentences == [*fillers, gold] and la.gold_sentence_ids == [2]
        assert first.question == middle.question == last.question


def test_gold_is_a_gold_sentence_and_fillers_come_from_other_examples_without_the_answer() -> None:
    spliced = spliced_position_examples(EXAMPLES, seed=3, min_fillers=3, max_fillers=3)
    by_id = {ex.id: ex for ex in spliced["first"]}
    # a's only gold is "A gold."; its fillers avoid its own sentences and "B three mentions gold."
    # (it contains a's answer), and the blank sentence of c is never drawn
    a_sentences = by_id["a/first"].contexts[0].sentences
    assert a_sentences[0] == "A gold."
    assert set(a_sentences[1:]) <= {"B one.", "B two.", "C one.", "C three.", "D one.", "D two."}
    assert by_id["b/first"].contexts[0].sentences[0] == "B two."
    assert not set(by_id["d/first"].contexts[0].sentences[1:]) & {"D one.", "D two."}


def test_deterministic_for_a_seed_and_varies_with_it() -> None:
    def draw(seed):
        return [ex.contexts[0].sentences for ex in spliced_position_examples(EXAMPLES, seed=seed)["last"]]

    assert draw("x:0") == draw("x:0")
    assert any(draw(f"x:{i}") != draw("x:0") for i in range(1, 5))


def test_middle_needs_two_fillers_and_filler_count_is_capped_by_the_pool() -> None:
    one = spliced_position_examples(EXAMPLES, seed=0, min_fillers=1, max_fillers=1)
    assert len(one["first"]) == len(one["last"]) == 3 and one["middle"] == []
    pair = [EXAMPLES[0], example("e", ["E one."], [0], [])]  # e offers one filler to a, a offers two to e
    a, e = spliced_position_examples(pair, seed=0, min_fillers=5, max_fillers=10)["last"]
    assert a.contexts[0].sentences == ["E one.", "A gold."] and a.extra["fillers"] == 1
    assert sorted(e.contexts[0].sentences[:2]) == ["A gold.", "A other."] and e.extra["fillers"] == 2
    assert spliced_position_examples(EXAMPLES[:1], seed=0)["first"] == []  # nothing to splice in


def test_spliced_examples_score_like_any_other() -> None:
    spliced = spliced_position_examples(EXAMPLES, seed=1, min_fillers=2, max_fillers=2)
    last = spliced["last"]
    kept_gold_only = []
    for ex in last:
        _, spans = context_text(ex.contexts[0].sentences)
        kept_gold_only.append([[spans[ex.contexts[0].gold_sentence_ids[0]]]])
    report = score_pruning(last, kept_gold_only)
    assert (report.recall, report.non_gold_dropped) == (1.0, 1.0)
    assert score_pruning(last, [[[Span(0, 2)]] for _ in last]).recall == 0.0  # a sliver of filler only


@pytest.mark.parametrize(("low", "high"), [(0, 3), (4, 3)])
def test_bad_filler_range_is_rejected(low: int, high: int) -> None:
    with pytest.raises(ValueError, match=f"filler range {low}..{high} is invalid"):
        spliced_position_examples(EXAMPLES, seed=0, min_fillers=low, max_fillers=high)
