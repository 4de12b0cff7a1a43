"""A query and passages for the tests of the integrations and the server: every passage has two
sentences, only the first passage is about the query, and the tiny model scores all four differently."""

from __future__ import annotations

QUERY = "how long do fleas live"
TEXTS = [
    "Fleas live up to a year. Their life cycle depends on temperature.",
    "The Eiffel Tower is in Paris. It was finished in 1889.",
    "Cats sleep a lot. Dogs bark at night.",
    "Ticks are not insects. They are arachnids.",
]
