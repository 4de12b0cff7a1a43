"""Multi-hop pruning: ``process(..., hops=2)`` keeps sentences only in the evidence chain."""

from __future__ import annotations

import math

import pytest
from sample_texts import MULTIHOP_PASSAGES as PASSAGES
from sample_texts import MULTIHOP_QUESTION as QUESTION
from sample_texts import MULTIHOP_TITLES as TITLES

from ragprune.pipeline.multihop import (
    BRIDGE_PASSAGES,
    chain_of,
    evidence_of,
    expand_query,
    keep_chain,
    linked_passages,
)
from ragprune.pipeline.results import PassageResult, QueryResult, SentenceScore
from ragprune.types import Document, Query, Span

ENCODED = [i for i, text in enumerate(PASSAGES) if text.strip()]


def _passage(index: int, logit: float, kept: list[bool], title: str = "") -> PassageResult:
    sentences = [
        SentenceScore(Span(2 * k, 2 * k + 1), 0.5 if flag else 0.05, flag) for k, flag in enumerate(kept)
    ]
    return PassageResult(Document(str(index), "a. b. c.", title), index, logit, 0.5, sentences, chunks=1)


def test_linked_passages_are_those_the_question_or_evidence_names_by_title():
    titles = ["Bauer Media Group", "Mercury (planet)", "Art", "", "Hamburg", "Paris", "Bauer Media Group"]
    titles.append("It")
    passages = [_passage(i, 0.0, [True], title) for i, title in enumerate(titles)]
    result = QueryResult(Query("q", "How far is MERCURY from the sun?"), passages)
    evidence = ["It is an article about Bauer Media Group.", "Art-deco buildings line the port of Hamburg."]
    # 0 and 4 are named but are the first hop's own passages; "Art" is a word of "Art-deco", not of
    # "article"; the parenthesised qualifier is not needed; the untitled passage 3 and "It" (too short to
    # be a name) are never linked
    assert linked_passages(result, {0, 4}, evidence) == {1, 2, 6}
    assert linked_passages(result, {0, 4}, []) == {1}  # the question alone
    assert linked_passages(result, {0}, ["Parisian cafés."]) == {1}  # whole words only


def test_a_title_links_one_passage_within_one_text_and_question_words_never_link():
    titles = ["Elbe River", "Python", "Python", "Python (film)", "Who", "C++"]
    passages = [_passage(i, logit, [True], t) for i, (t, logit) in enumerate(zip(titles, [0, 1, 3, 2, 0, 0]))]
    result = QueryResult(Query("q", "Who wrote the Python code of the Elbe"), passages)
    # "Elbe" ends the question and "River" starts the evidence: no link across two texts; of the two
    # chunks titled "Python" the better-scored one (2) links, "Python (film)" is another document
    assert linked_passages(result, set(), ["River traffic is heavy.", "It compiles C++."]) == {2, 3, 5}


def test_linked_passages_come_first_in_the_chain_within_the_budget():
    passages = [_passage(i, logit, [True]) for i, logit in enumerate([3.0, 2.0, 1.0, 0.5, -5.0, -6.0])]
    result = QueryResult(Query("q", "question"), passages)
    second = {2: 1.0, 3: 1.0, 4: -5.0, 5: -6.0}
    assert chain_of(result, {0, 1}, second, bridges=1) == {0, 1, 2}
    assert chain_of(result, {0, 1}, second, bridges=1, linked={5}) == {0, 1, 5}
    assert chain_of(result, {0, 1}, second, bridges=2, linked={4, 5}) == {0, 1, 4, 5}
    assert chain_of(result, {0, 1}, second, bridges=3, linked={5}) == {0, 1, 2, 3, 5}
    assert chain_of(result, {0, 1}, second, bridges=1, linked={4, 5}) == {0, 1, 4}  # by chain score


def test_chain_is_the_first_hop_and_the_best_others_by_summed_logits():
    passages = [_passage(i, logit, [True]) for i, logit in enumerate([3.0, 2.0, 1.0, 0.5, 0.0, -1.0])]
    passages.append(PassageResult(Document("6", " "), 6, -math.inf, 0.0))  # not encoded: never in a chain
    result = QueryResult(Query("q", "question"), passages)
    second = {2: -2.0, 3: 1.0, 4: 1.0, 5: 0.0}  # sums: 2 -> -1.0, 3 -> 1.5, 4 -> 1.0, 5 -> -1.0
    assert chain_of(result, {0, 1}, second, bridges=2) == {0, 1, 3, 4}
    assert chain_of(result, {0, 1}, second, bridges=3) == {0, 1, 2, 3, 4}  # tie at -1.0: input order
    assert chain_of(result, {0, 1}, second, bridges=10) == {0, 1, 2, 3, 4, 5}
    # no second-hop logit (no evidence): the first pass's logit counts twice, i.e. the first pass's order
    assert chain_of(result, {0, 1}, {}, bridges=2) == {0, 1, 2, 3}


def test_keep_chain_drops_only_the_decisions_outside_the_chain():
    passages = [_passage(0, 1.0, [True, False]), _passage(1, 0.0, [True, True]), _passage(2, -1.0, [False])]
    result = keep_chain(QueryResult(Query("q", "question"), list(passages)), {0})
    assert result.passages[0] is passages[0]
    for before, after in zip(passages[1:], result.passages[1:]):
        assert not any(s.kept for s in after.sentences) and after.kept_spans == []
        assert [(s.span, s.score) for s in after.sentences] == [(s.span, s.score) for s in before.sentences]
        assert (after.logit, after.probability, after.index) == (
            before.logit,
            before.probability,
            before.index,
        )


@pytest.mark.parametrize("titled", [False, True])
def test_second_hop_prunes_outside_the_chain_and_keeps_the_first_pass_otherwise(pruner, titled):
    threshold = 0.0  # everything kept by the first pass: the evidence is every sentence of the top two
    documents = [Document(str(i), text, TITLES[i] if titled else "") for i, text in enumerate(PASSAGES)]
    one = pruner.process(QUESTION, documents, threshold=threshold, reorder=False)
    two = pruner.process(QUESTION, documents, threshold=threshold, reorder=False, hops=2)
    evidence, sources = evidence_of(one, 2)
    others = [p for p in one if p.index not in sources and p.sentences]
    direct = pruner.process(
        expand_query(QUESTION, evidence),
        [p.document for p in others],
        threshold=threshold,
        reorder=False,
        truncate=True,  # the hop query is cut to the query limit, as process does
    )
    second = {p.index: again.logit for p, again in zip(others, direct)}
    linked = linked_passages(one, sources, evidence)
    assert bool(linked) is titled  # some passage outside the first hop is named by the question or evidence
    by_chain = sorted(others, key=lambda p: (p.index not in linked, -(p.logit + second[p.index]), p.index))
    chain = sources | {p.index for p in by_chain[:BRIDGE_PASSAGES]}
    unlinked = sorted(others, key=lambda p: (-(p.logit + second[p.index]), p.index))[:BRIDGE_PASSAGES]
    assert (chain != sources | {p.index for p in unlinked}) is titled  # the links change this chain
    assert len(ENCODED) > len(chain)  # some passage is outside the chain
    assert [p.logit for p in two] == [p.logit for p in one]
    assert [p.rank for p in two] == [p.rank for p in one]
    for a, b in zip(one, two):
        assert [(s.span, s.score) for s in b.sentences] == [(s.span, s.score) for s in a.sentences]
        expected = [s.kept for s in a.sentences] if a.index in chain else [False] * len(a.sentences)
        assert [s.kept for s in b.sentences] == expected
    assert math.isinf(two.passages[4].logit) and two.passages[4].sentences == []


def test_one_hop_is_not_affected_by_the_multi_hop_policy(pruner):
    one = pruner.process(QUESTION, PASSAGES, threshold=0.0, reorder=False)
    assert all(s.kept for p in one for s in p.sentences)  # every passage keeps what it scored


def test_hops_must_be_one_or_two(pruner):
    with pytest.raises(ValueError, match="hops=3"):
        pruner.process(QUESTION, PASSAGES, hops=3)
