"""A query and passages for the tests of the integrations and the server: every passage has two
sentences, only the first passage is about the query, and the tiny model scores all four differently."""

from __future__ import annotations

import pytest

QUERY = "how long do fleas live"
TEXTS = [
    "Fleas live up to a year. Their life cycle depends on temperature.",
    "The Eiffel Tower is in Paris. It was finished in 1889.",
    "Cats sleep a lot. Dogs bark at night.",
    "Ticks are not insects. They are arachnids.",
]

# a two-hop question over nine passages (one empty) with their Wikipedia-style titles (tests of hops=2)
MULTIHOP_QUESTION = "Which magazine was started first, Arthur's Magazine or First for Women?"
MULTIHOP_PASSAGES = [
    "Arthur's Magazine was an American literary periodical. It was published in Philadelphia from 1844.",
    "First for Women is a woman's magazine published by Bauer Media Group. It was started in 1989.",
    "The Eiffel Tower is in Paris. It was finished in 1889.",
    "Bauer Media Group is a German company. It is based in Hamburg.",
    "   ",
    "Philadelphia is a city in Pennsylvania. It is the sixth-most populous city in the United States.",
    "Women's magazines cover fashion and health. Many are published monthly.",
    "Hamburg is a port city. The Elbe flows through it.",
    "Literary periodicals publish essays. Some also publish poems.",
]
MULTIHOP_TITLES = [
    "Arthur's Magazine",
    "First for Women",
    "Eiffel Tower",
    "Bauer Media Group",
    "",
    "Philadelphia",
    "Women's magazine",
    "Hamburg",
    "Literary periodical",
]


def sample_scores(pruner, texts: list[str] = TEXTS) -> tuple[list[float], list[list[float]]]:
    """Passage logits and per-passage sentence scores of ``pruner`` on ``QUERY`` / ``texts``, input order."""
    result = pruner.process(QUERY, texts, reorder=False)
    return [p.logit for p in result], [[s.score for s in p.sentences] for p in result]


def assert_scores_close(reference, other, tolerance: float) -> None:
    """``other`` (``sample_scores``) equals ``reference`` within ``tolerance``, logits and sentences."""
    assert other[0] == pytest.approx(reference[0], abs=tolerance)
    for passage_ref, passage in zip(reference[1], other[1], strict=True):
        assert passage == pytest.approx(passage_ref, abs=tolerance)
