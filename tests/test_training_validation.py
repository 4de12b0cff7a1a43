"""The one ranking validator of training (DL21 nDCG@10): judged candidates or every qrel, model scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sample_texts import QUERY, TEXTS

from ragprune.training.validation import RankingValidator, ValidationQuery

RECORDS = [
    {
        "qid": "dl21:1",
        "query": "q one",
        "candidates": [
            {"pid": "p1", "docno": "d1", "label": 0},
            {"pid": "p2", "docno": "d2", "label": 2},
            {"pid": "p3", "docno": "d3", "label": 1},
            {"pid": "p3", "docno": "d3b", "label": None},  # a duplicate text under another docno, unjudged
        ],
    },
    {"qid": "dl21:2", "query": "q two", "candidates": []},  # nothing to rerank: skipped
]


def _dcg(gains: list[int]) -> float:
    return sum(g / math.log2(rank + 2) for rank, g in enumerate(gains))


def test_judged_candidates_ndcg_by_hand():
    validator = RankingValidator.from_records(RECORDS)
    assert [q.qid for q in validator.queries] == ["dl21:1"]
    assert validator.queries[0].doc_ids == ("d1", "d2", "d3", "d3b")
    assert validator.queries[0].qrels == {"d1": 0, "d2": 2, "d3": 1}
    perfect = validator.evaluate({"dl21:1": [0.1, 0.9, 0.5, 0.0]})
    assert perfect.ndcg10 == pytest.approx(1.0)
    worst = validator.evaluate({"dl21:1": [0.9, 0.1, 0.5, 0.7]})  # d1, d3b, d3, d2
    expected = _dcg([0, 0, 1, 2]) / _dcg([2, 1])
    assert worst.ndcg10 == pytest.approx(expected) and worst.ndcg10 < 0.6
    assert worst.per_query == {"dl21:1": pytest.approx(expected)}
    # Platt pairs: judged candidates only, in ranked order
    assert worst.pairs == [(0.9, 0), (0.5, 1), (0.1, 2)]


def test_every_qrel_counts_relevant_documents_outside_the_run():
    qrels = {"dl21:1": {"d1": 0, "d2": 2, "d3": 1, "d9": 2}}  # d9: judged, not in the top-100
    validator = RankingValidator.from_records(RECORDS[:1], qrels=qrels)
    result = validator.evaluate({"dl21:1": np.array([0.1, 0.9, 0.5, 0.0])})
    assert result.ndcg10 == pytest.approx(_dcg([2, 1]) / _dcg([2, 2, 1]))
    assert (
        result.ndcg10
        < RankingValidator.from_records(RECORDS[:1]).evaluate({"dl21:1": [0.1, 0.9, 0.5, 0]}).ndcg10
    )
    with pytest.raises(KeyError, match="dl21:1"):
        RankingValidator.from_records(RECORDS[:1], qrels={})


def test_scores_must_cover_every_candidate_and_some_query_must_be_judged():
    validator = RankingValidator.from_records(RECORDS)
    with pytest.raises(ValueError, match="one score per candidate"):
        validator.evaluate({"dl21:1": [0.1, 0.2]})
    with pytest.raises(KeyError):
        validator.evaluate({})
    unjudged = RankingValidator([ValidationQuery("q", "query", ("p",), ("p",), {})])
    with pytest.raises(ValueError, match="no validation query has judgements"):
        unjudged.evaluate({"q": [1.0]})


def test_model_scores_are_the_pipelines_logits_in_candidate_order(pruner):
    texts = {f"p{i}": text for i, text in enumerate(TEXTS)}
    record = {
        "qid": "v",
        "query": QUERY,
        "candidates": [{"pid": pid, "label": i % 3} for i, pid in enumerate(reversed(list(texts)))],
    }
    validator = RankingValidator.from_records([record])
    scores = validator.model_scores(pruner, texts)["v"]
    expected = pruner.process(QUERY, [texts[c["pid"]] for c in record["candidates"]], reorder=False)
    assert scores.tolist() == [p.logit for p in expected]
    result = validator.validate_model(pruner, texts)
    assert result.ndcg10 == validator.evaluate({"v": scores}).ndcg10
    assert len(result.pairs) == len(record["candidates"])
