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


def sample_scores(pruner, texts: list[str] = TEXTS) -> tuple[list[float], list[list[float]]]:
    """Passage logits and per-passage sentence scores of ``pruner`` on ``QUERY`` / ``texts``, input order."""
    result = pruner.process(QUERY, texts, reorder=False)
    return [p.logit for p in result], [[s.score for s in p.sentences] for p in result]


def assert_scores_close(reference, other, tolerance: float) -> None:
    """``other`` (``sample_scores``) equals ``reference`` within ``tolerance``, logits and sentences."""
    assert other[0] == pytest.approx(reference[0], abs=tolerance)
    for passage_ref, passage in zip(reference[1], other[1], strict=True):
        assert passage == pytest.approx(passage_ref, abs=tolerance)
