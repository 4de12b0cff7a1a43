"""The rerankers / sentence-transformers conveniences are methods of ``RerankPruner`` too."""

from __future__ import annotations

import asyncio

import numpy as np

from ragprune.ranking import predict, rank

QUERY = "how long do fleas live?"
DOCS = ["Fleas live up to a year. Cats sleep.", "The Eiffel Tower is in Paris.", "Fleas bite dogs."]


def test_rank_with_doc_ids_and_metadata_and_index_access(pruner):
    results = pruner.rank(QUERY, DOCS, doc_ids=["a", "b", "c"], metadata=[{"n": 1}, None, {"n": 3}], top_k=2)
    expected = rank(
        pruner, QUERY, DOCS, doc_ids=["a", "b", "c"], metadata=[{"n": 1}, None, {"n": 3}], top_k=2
    )
    assert [d.doc_id for d in results] == [d.doc_id for d in expected]
    assert results[0].doc_id == expected[0].doc_id and len(results) == 2
    given = {"a": {"n": 1}, "b": {}, "c": {"n": 3}}
    assert all(results[d.doc_id].metadata == given[d.doc_id] for d in results)


def test_rank_async_matches_rank(pruner):
    sync = pruner.rank(QUERY, DOCS)
    out = asyncio.run(pruner.rank_async(QUERY, DOCS))
    assert [(d.doc_id, d.score) for d in out] == [(d.doc_id, d.score) for d in sync]


def test_predict_scores_pairs_like_a_cross_encoder(pruner):
    pairs = [(QUERY, doc) for doc in DOCS]
    scores = pruner.predict(pairs)
    assert isinstance(scores, np.ndarray) and scores.shape == (3,)
    np.testing.assert_array_equal(scores, predict(pruner, pairs))
    assert pruner.predict(pairs[0]) == scores[0]


def test_as_langchain_compressor_keeps_k(pruner):
    from ragprune.integrations.langchain import as_langchain_compressor

    compressor = as_langchain_compressor(pruner, k=1)
    assert compressor.top_n == 1 and compressor.pruner is pruner
