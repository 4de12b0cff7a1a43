from __future__ import annotations

import json

import pytest
from sample_texts import QUERY

from ragprune import Document
from ragprune.ranking import RankedResults, prune, rank

DOCS = [
    "Fleas live up to a year. Their life cycle depends on temperature.",
    "The Eiffel Tower is in Paris. It was finished in 1889.",
    "Cats sleep a lot.",
    "",
]


def test_rank_returns_every_document_best_first_with_its_input_position(pruner):
    results = rank(pruner, QUERY, DOCS)
    assert isinstance(results, RankedResults) and len(results) == len(DOCS)
    assert sorted(doc.index for doc in results) == list(range(len(DOCS)))
    assert [doc.rank for doc in results] == [1, 2, 3, 4]
    logits = [doc.logit for doc in results]
    assert logits == sorted(logits, reverse=True)
    for doc in results:
        assert doc.text == DOCS[doc.index] and doc.doc_id == str(doc.index)
        assert doc.score == doc.result.probability
    assert results.documents[-1].index == 3 and results.documents[-1].score == 0.0  # the empty document


def test_rank_agrees_with_process(pruner):
    processed = pruner.process(QUERY, DOCS)
    ranked = rank(pruner, QUERY, DOCS)
    assert [d.index for d in ranked] == [p.index for p in processed]
    assert [d.logit for d in ranked] == [p.logit for p in processed]


def test_top_k_argument_and_method_cut_the_same_prefix(pruner):
    full = rank(pruner, QUERY, DOCS)
    cut = rank(pruner, QUERY, DOCS, top_k=2)
    assert [d.index for d in cut] == [d.index for d in full.top_k(2)] == [d.index for d in full][:2]
    assert len(full.top_k(10)) == len(DOCS)
    with pytest.raises(ValueError, match="positive"):
        full.top_k(0)


def test_documents_are_found_by_id_with_metadata_intact(pruner):
    docs = [
        Document("d1", DOCS[0], title="Fleas", metadata={"url": "u1"}),
        {"id": "d2", "text": DOCS[1], "metadata": {"n": 2}},
        {"id": "d3", "text": DOCS[2], "source": "web"},
    ]
    results = rank(pruner, QUERY, docs)
    assert "d2" in results and "nope" not in results
    assert results["d1"].metadata == {"url": "u1"} and results["d1"].document.title == "Fleas"
    assert results["d2"].metadata == {"n": 2} and results["d2"].index == 1
    assert results["d3"].metadata == {"source": "web"}
    with pytest.raises(KeyError, match="no document with id 'nope'"):
        results["nope"]
    assert results[0] is results.documents[0] and results[-1] is results.documents[-1]  # by position
    assert [d.doc_id for d in results[1:]] == [d.doc_id for d in results.documents[1:]]
    with pytest.raises(TypeError, match="position"):
        results[1.5]
    cut = results.top_k(1)
    missing = next(doc_id for doc_id in ("d1", "d2", "d3") if doc_id not in cut)
    with pytest.raises(KeyError, match="cut by top_k"):
        cut[missing]


def test_duplicate_ids_are_reported_not_silently_resolved(pruner):
    results = rank(pruner, QUERY, [{"id": "x", "text": DOCS[0]}, {"id": "x", "text": DOCS[1]}])
    assert len(results) == 2
    with pytest.raises(KeyError, match="2 documents share the id 'x'"):
        results["x"]


def test_prune_threshold_controls_what_is_kept_and_spans_point_into_the_original(pruner):
    everything = prune(pruner, QUERY, DOCS[:3], threshold=0.0)
    for doc in everything:
        assert doc.pruned_text == doc.text.strip() and doc.compression == pytest.approx(0.0)
        assert " ".join(span.slice(doc.text) for span in doc.kept_spans) == doc.pruned_text
    nothing = prune(pruner, QUERY, DOCS[:3], threshold=1.0)
    assert len(nothing) == 3  # pruning empties documents, it never drops them
    assert all(doc.pruned_text == "" and doc.kept_spans == [] and doc.compression == 1.0 for doc in nothing)
    assert [d.index for d in nothing] == [d.index for d in everything]


def test_prune_between_sentence_scores_keeps_only_the_better_sentence(pruner):
    (doc,) = prune(pruner, QUERY, DOCS[:1])
    low, high = sorted(s.score for s in doc.sentences)
    (cut,) = prune(pruner, QUERY, DOCS[:1], threshold=(low + high) / 2)
    kept = [s for s in cut.sentences if s.kept]
    assert len(kept) == 1 and kept[0].score == pytest.approx(high)
    assert cut.pruned_text == kept[0].span.slice(DOCS[0]) and 0.0 < cut.compression < 1.0


def test_above_keeps_documents_with_score_at_least_the_bound(pruner):
    results = rank(pruner, QUERY, DOCS)
    scores = sorted({doc.score for doc in results})
    bound = scores[len(scores) // 2]
    kept = results.above(bound)
    assert [d.index for d in kept] == [d.index for d in results if d.score >= bound]
    assert 0 < len(kept) < len(results)


def test_to_dict_is_strict_json_with_ids_and_spans(pruner):
    payload = rank(pruner, QUERY, DOCS).to_dict()
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text)["results"][-1]["logit"] is None  # the empty document's -inf logit
    assert [r["id"] for r in payload["results"]] == [d.doc_id for d in rank(pruner, QUERY, DOCS)]
    assert all("kept_spans" in r and "score" in r for r in payload["results"])


def test_one_query_only(pruner):
    with pytest.raises(TypeError, match="one query"):
        rank(pruner, [QUERY, QUERY], DOCS)
    with pytest.raises(ValueError, match="is empty"):
        rank(pruner, "  ", DOCS)


def test_rank_takes_doc_ids_and_metadata_like_rerankers(pruner):
    texts = DOCS[:3]
    results = rank(pruner, QUERY, texts, doc_ids=["a", 7, None], metadata=[{"u": 1}, None, {"u": 3}])
    assert {d.doc_id: d.metadata for d in results} == {"a": {"u": 1}, "7": {}, "2": {"u": 3}}
    assert [d.index for d in results] == [d.index for d in rank(pruner, QUERY, texts)]
    with pytest.raises(ValueError, match="doc_ids has 2 entries for 3 docs"):
        rank(pruner, QUERY, texts, doc_ids=["a", "b"])
    with pytest.raises(ValueError, match="put the id and metadata inside each document"):
        rank(pruner, QUERY, [{"text": DOCS[0]}], doc_ids=["a"])


def test_rank_async_matches_rank_off_the_event_loop(pruner, process_threads):
    import asyncio
    import threading

    from ragprune.ranking import rank_async

    async def ranked():
        return await rank_async(pruner, QUERY, DOCS, top_k=2), threading.get_ident()

    results, loop_thread = asyncio.run(ranked())
    assert process_threads[-1] != loop_thread
    assert [d.index for d in results] == [d.index for d in rank(pruner, QUERY, DOCS, top_k=2)]


def test_predict_scores_pairs_in_input_order_like_a_cross_encoder(pruner):
    from ragprune.ranking import predict

    pairs = [(QUERY, DOCS[2]), ("where is the eiffel tower", DOCS[1]), (QUERY, "")]
    scores = predict(pruner, pairs)
    assert scores.shape == (3,) and scores.dtype.kind == "f"
    assert scores[0] == pytest.approx(rank(pruner, QUERY, [DOCS[2]])[0].score)
    assert scores[1] == pytest.approx(rank(pruner, "where is the eiffel tower", [DOCS[1]])[0].score)
    assert scores[2] == 0.0
    logits = predict(pruner, pairs, logits=True)
    assert logits[0] == pytest.approx(rank(pruner, QUERY, [DOCS[2]])[0].logit) and logits[2] == float("-inf")
    single = predict(pruner, (QUERY, DOCS[0]))
    assert isinstance(single, float) and single == pytest.approx(rank(pruner, QUERY, DOCS[:1])[0].score)
    with pytest.raises(TypeError, match="pair 0"):
        predict(pruner, [QUERY])


def test_as_langchain_compressor_keeps_k(pruner):
    pytest.importorskip("langchain_core", reason="needs langchain-core (integrations extra)")
    from ragprune.integrations.langchain import as_langchain_compressor

    compressor = as_langchain_compressor(pruner, k=2, prune_threshold=0.0)
    assert compressor.top_n == 2 and compressor.pruner is pruner and compressor.prune_threshold == 0.0


def test_prune_with_two_hops_is_process_with_two_hops(pruner):
    from sample_texts import MULTIHOP_PASSAGES, MULTIHOP_QUESTION, MULTIHOP_TITLES

    docs = [
        Document(str(i), text, title)
        for i, (text, title) in enumerate(zip(MULTIHOP_PASSAGES, MULTIHOP_TITLES))
    ]
    expected = pruner.process(MULTIHOP_QUESTION, docs, threshold=0.0, hops=2, reorder=False)
    two = {d.index: d.kept_spans for d in prune(pruner, MULTIHOP_QUESTION, docs, threshold=0.0, hops=2)}
    one = {d.index: d.kept_spans for d in prune(pruner, MULTIHOP_QUESTION, docs, threshold=0.0)}
    assert two == {p.index: p.kept_spans for p in expected.passages}
    assert two != one  # passages outside the evidence chain keep nothing with two hops


def test_two_hops_need_a_pruner_with_multi_hop_pruning(pruner):
    class OneHop:  # a backend whose process has no hops
        def process(self, *args, **kwargs):
            raise AssertionError("not reached")

    with pytest.raises(ValueError, match="hops=2 needs multi-hop pruning, which OneHop"):
        prune(OneHop(), QUERY, DOCS, hops=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hops=3"):
        prune(pruner, QUERY, DOCS, hops=3)
