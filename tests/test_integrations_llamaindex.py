from __future__ import annotations

import asyncio
import threading

import pytest

pytest.importorskip("llama_index.core", reason="needs llama-index-core (integrations extra)")

from llama_index.core import VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.schema import MetadataMode, NodeRelationship, NodeWithScore, RelatedNodeInfo, TextNode
from sample_texts import QUERY, TEXTS

from ragprune.integrations import METADATA_KEYS, ORIGINAL_TEXT_KEY
from ragprune.integrations.llamaindex import RETRIEVAL_SCORE_KEY, RagprunePostprocessor
from ragprune.ranking import prune, rank

NODE_SCORES = [0.5 - i / 10 for i in range(len(TEXTS))]  # the retriever scores make_nodes gives


def make_nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(
                text=text,
                id_=f"node-{i}",
                metadata={"source": f"s{i}", "page": i},
                excluded_llm_metadata_keys=["page"],
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc-{i}")},
            ),
            score=NODE_SCORES[i],
        )
        for i, text in enumerate(TEXTS)
    ]


def assert_faithful(outputs: list[NodeWithScore], inputs: list[NodeWithScore]) -> None:
    """One node in gives at most one node out, with its id, relationships and metadata, text recoverable."""
    by_id = {scored.node.node_id: scored for scored in inputs}
    assert len({out.node.node_id for out in outputs}) == len(outputs)
    for out in outputs:
        source = by_id[out.node.node_id]
        assert out.node is not source.node
        assert out.node.relationships == source.node.relationships
        metadata = out.node.metadata
        assert set(metadata) == set(source.node.metadata) | set(METADATA_KEYS) | {RETRIEVAL_SCORE_KEY}
        assert {k: metadata[k] for k in source.node.metadata} == source.node.metadata
        assert metadata[RETRIEVAL_SCORE_KEY] == source.score
        fused = metadata["ragprune_fused_score"]  # nodes with scores: fused with them by default
        assert out.score == (metadata["ragprune_score"] if fused is None else fused)
        original = metadata[ORIGINAL_TEXT_KEY]
        assert original == source.node.get_content() and inputs[metadata["ragprune_index"]] is source
        spans = metadata["ragprune_kept_spans"]
        assert out.node.get_content() == " ".join(original[start:end] for start, end in spans)
        shown_to_llm = out.node.get_content(metadata_mode=MetadataMode.LLM)
        assert "ragprune" not in shown_to_llm and "source: " in shown_to_llm and "page: " not in shown_to_llm
        assert "ragprune" not in out.node.get_content(metadata_mode=MetadataMode.EMBED)
    scores = [out.score for out in outputs]
    assert scores == sorted(scores, reverse=True)


def test_postprocessor_reranks_prunes_and_keeps_nodes_intact(pruner):
    nodes = make_nodes()
    before = [scored.model_copy(deep=True) for scored in nodes]
    out = RagprunePostprocessor(pruner=pruner).postprocess_nodes(nodes, query_str=QUERY)
    assert len(out) == len(nodes)
    assert_faithful(out, nodes)
    assert [(s.node.node_id, s.score, s.node.get_content(), s.node.metadata) for s in nodes] == [
        (s.node.node_id, s.score, s.node.get_content(), s.node.metadata) for s in before
    ]
    expected = rank(pruner, QUERY, TEXTS, first_stage_scores=NODE_SCORES)
    assert [o.node.node_id for o in out] == [f"node-{d.index}" for d in expected]
    assert [o.score for o in out] == pytest.approx([d.fused_score for d in expected])


def test_pruning_changes_text_not_identity(pruner):
    (doc,) = prune(pruner, QUERY, TEXTS[:1])
    low, high = sorted(s.score for s in doc.sentences)
    post = RagprunePostprocessor(pruner=pruner, prune_threshold=(low + high) / 2)
    (out,) = post.postprocess_nodes(make_nodes()[:1], query_str=QUERY)
    assert (
        out.node.get_content() and out.node.get_content() != TEXTS[0] and out.node.get_content() in TEXTS[0]
    )
    assert_faithful([out], make_nodes()[:1])
    emptied = RagprunePostprocessor(pruner=pruner, prune_threshold=1.0).postprocess_nodes(
        make_nodes(), query_str=QUERY
    )
    assert len(emptied) == len(TEXTS) and all(o.node.get_content() == "" for o in emptied)


def test_top_n_and_score_threshold_are_the_only_cuts(pruner):
    nodes = make_nodes()
    ranked = rank(pruner, QUERY, TEXTS, first_stage_scores=NODE_SCORES)
    top2 = RagprunePostprocessor(pruner=pruner, top_n=2).postprocess_nodes(nodes, query_str=QUERY)
    assert [o.node.node_id for o in top2] == [f"node-{d.index}" for d in ranked.top_k(2)]
    bound = sorted((d.score for d in ranked), reverse=True)[2]
    above = RagprunePostprocessor(pruner=pruner, score_threshold=bound).postprocess_nodes(
        nodes, query_str=QUERY
    )
    assert [o.node.node_id for o in above] == [f"node-{d.index}" for d in ranked.above(bound)]
    assert len(above) == 3
    for outputs in (top2, above):
        assert_faithful(outputs, nodes)


def test_query_is_required_and_empty_input_is_fine(pruner):
    post = RagprunePostprocessor(pruner=pruner)
    with pytest.raises(ValueError, match="needs the query"):
        post.postprocess_nodes(make_nodes())
    assert post.postprocess_nodes([], query_str=QUERY) == []


def test_serialises_without_the_model(pruner):
    data = RagprunePostprocessor(pruner=pruner, top_n=3).to_dict()
    assert data == {
        "top_n": 3,
        "score_threshold": None,
        "prune_threshold": None,
        "drop_empty": False,
        "truncate_query": False,
        "hops": 1,
        "fusion": None,
        "class_name": "RagprunePostprocessor",
    }


def test_async_matches_sync_off_the_event_loop(pruner, process_threads):
    post = RagprunePostprocessor(pruner=pruner, top_n=3)

    async def run() -> tuple[list[NodeWithScore], int]:
        return await post.apostprocess_nodes(make_nodes(), query_str=QUERY), threading.get_ident()

    out, loop_thread = asyncio.run(run())
    assert process_threads and process_threads[-1] != loop_thread
    sync = post.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert [(o.node.node_id, o.score, o.node.get_content()) for o in out] == [
        (o.node.node_id, o.score, o.node.get_content()) for o in sync
    ]


def test_query_engine_end_to_end(pruner):
    nodes = [scored.node for scored in make_nodes()]
    index = VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))
    retriever = index.as_retriever(similarity_top_k=3)
    retrieved = retriever.retrieve(QUERY)
    assert len(retrieved) == 3
    post = RagprunePostprocessor(pruner=pruner, top_n=2)
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=3, node_postprocessors=[post])
    response = engine.query(QUERY)
    out = response.source_nodes
    assert len(out) == 2
    assert_faithful(out, retrieved)
    texts = [scored.node.get_content() for scored in retrieved]
    # the retriever's scores are fused with the model's by default
    expected = rank(pruner, QUERY, texts, top_k=2, first_stage_scores=[scored.score for scored in retrieved])
    assert [o.node.node_id for o in out] == [retrieved[d.index].node.node_id for d in expected]
    prompt = str(response)  # MockLLM answers with the prompt it was given
    assert all(o.node.get_content() in prompt for o in out) and "ragprune" not in prompt


def test_no_arguments_uses_the_shipped_model(pruner, monkeypatch):
    from ragprune.integrations import _common
    from ragprune.pipeline import RerankPruner

    monkeypatch.setattr(RerankPruner, "load", classmethod(lambda cls, *a, **k: pruner))
    _common.shipped_pruner.cache_clear()
    try:
        out = RagprunePostprocessor(top_n=2).postprocess_nodes(make_nodes(), query_str=QUERY)
    finally:
        _common.shipped_pruner.cache_clear()
    assert [o.node.metadata["ragprune_index"] for o in out] == [
        d.index for d in rank(pruner, QUERY, TEXTS, top_k=2, first_stage_scores=NODE_SCORES)
    ]


def test_drop_empty_keeps_empty_nodes_from_the_llm(pruner):
    nothing = RagprunePostprocessor(pruner=pruner, prune_threshold=1.0)
    assert len(nothing.postprocess_nodes(make_nodes(), query_str=QUERY)) == len(TEXTS)  # all empty
    dropped = RagprunePostprocessor(pruner=pruner, prune_threshold=1.0, drop_empty=True)
    assert dropped.postprocess_nodes(make_nodes(), query_str=QUERY) == []
    kept = RagprunePostprocessor(pruner=pruner, prune_threshold=0.0, drop_empty=True)
    assert len(kept.postprocess_nodes(make_nodes(), query_str=QUERY)) == len(TEXTS)


def test_metadata_title_is_read_as_the_title(pruner):
    from ragprune import Document

    nodes = [
        NodeWithScore(node=TextNode(text=text, metadata={"title": "Fleas"}), score=0.1) for text in TEXTS[:2]
    ]
    out = RagprunePostprocessor(pruner=pruner).postprocess_nodes(nodes, query_str=QUERY)
    docs = [Document(str(i), t, title="Fleas") for i, t in enumerate(TEXTS[:2])]
    expected = rank(pruner, QUERY, docs, first_stage_scores=[0.1, 0.1])
    assert [o.score for o in out] == pytest.approx([d.fused_score for d in expected])
    assert [o.node.metadata["ragprune_score"] for o in out] == pytest.approx([d.score for d in expected])


def test_top_n_cuts_after_the_score_threshold(pruner):
    """With fusion the order is not the probability's: the ``top_n`` best of those that pass come back."""
    ranked = rank(pruner, QUERY, TEXTS, first_stage_scores=NODE_SCORES)
    for bound in sorted({d.score for d in ranked}):
        post = RagprunePostprocessor(pruner=pruner, top_n=2, score_threshold=bound)
        out = post.postprocess_nodes(make_nodes(), query_str=QUERY)
        passing = [f"node-{d.index}" for d in ranked if d.score >= bound]
        assert [o.node.node_id for o in out] == passing[:2]


def test_two_hops_prune_outside_the_evidence_chain(pruner):
    from sample_texts import MULTIHOP_PASSAGES, MULTIHOP_QUESTION, MULTIHOP_TITLES

    pairs = [(text, title) for text, title in zip(MULTIHOP_PASSAGES, MULTIHOP_TITLES) if text.strip()]
    nodes = [NodeWithScore(node=TextNode(text=text, metadata={"title": title})) for text, title in pairs]
    post = RagprunePostprocessor(pruner=pruner, prune_threshold=0.0, hops=2)
    out = post.postprocess_nodes(nodes, query_str=MULTIHOP_QUESTION)
    documents = [{"text": text, "title": title} for text, title in pairs]
    expected = prune(pruner, MULTIHOP_QUESTION, documents, threshold=0.0, hops=2)
    assert [o.node.get_content(metadata_mode=MetadataMode.NONE) for o in out] == [
        d.pruned_text for d in expected
    ]
    assert any(not o.node.get_content(metadata_mode=MetadataMode.NONE) for o in out)
