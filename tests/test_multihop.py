"""Multi-hop pruning: ``process(..., hops=2)`` re-scores the other passages with the kept evidence."""

from __future__ import annotations

import math

import pytest

from ragprune.pipeline.multihop import expand_query

QUESTION = "Which magazine was started first, Arthur's Magazine or First for Women?"
PASSAGES = [
    "Arthur's Magazine was an American literary periodical. It was published in Philadelphia from 1844.",
    "First for Women is a woman's magazine published by Bauer Media Group. It was started in 1989.",
    "The Eiffel Tower is in Paris. It was finished in 1889.",
    "Bauer Media Group is a German company. It is based in Hamburg.",
    "   ",
]


def test_second_hop_only_adds_sentences_and_keeps_the_ranking(pruner):
    one = pruner.process(QUESTION, PASSAGES, threshold=0.5, reorder=False)
    two = pruner.process(QUESTION, PASSAGES, threshold=0.5, reorder=False, hops=2)
    assert [p.logit for p in two] == [p.logit for p in one]
    assert [p.rank for p in two] == [p.rank for p in one]
    for a, b in zip(one, two):
        assert [s.span for s in a.sentences] == [s.span for s in b.sentences]
        assert all(sb.score >= sa.score for sa, sb in zip(a.sentences, b.sentences))
        assert all(sb.kept == (sb.score > 0.5) for sb in b.sentences)
        assert {s.span for s in a.sentences if s.kept} <= {s.span for s in b.sentences if s.kept}
    assert math.isinf(two.passages[4].logit) and two.passages[4].sentences == []


def test_second_hop_rescoring_matches_a_direct_call_with_the_expanded_query(pruner):
    threshold = 0.0  # everything kept: the evidence is every sentence of the top two passages
    one = pruner.process(QUESTION, PASSAGES, threshold=threshold, reorder=False)
    top = sorted((p for p in one if p.sentences), key=lambda p: (-p.logit, p.index))[:2]
    evidence = [p.document.text[s.span.start : s.span.end] for p in top for s in p.sentences]
    others = [p for p in one if p.index not in {t.index for t in top} and p.sentences]
    direct = pruner.process(
        expand_query(QUESTION, evidence),
        [p.document.text for p in others],
        threshold=threshold,
        reorder=False,
        truncate=True,  # the hop query is cut to the query limit, as process does
    )
    two = pruner.process(QUESTION, PASSAGES, threshold=threshold, reorder=False, hops=2)
    for first, again in zip(others, direct):
        merged = two.passages[first.index]
        assert [s.score for s in merged.sentences] == [
            max(a.score, b.score) for a, b in zip(first.sentences, again.sentences)
        ]
    for source in top:  # the evidence's own passages are not re-scored
        assert [s.score for s in two.passages[source.index].sentences] == [s.score for s in source.sentences]


def test_hops_must_be_one_or_two(pruner):
    with pytest.raises(ValueError, match="hops=3"):
        pruner.process(QUESTION, PASSAGES, hops=3)
