from __future__ import annotations

import asyncio
import copy
import threading

import pytest

pytest.importorskip("langchain_core", reason="needs langchain-core (integrations extra)")

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore
from sample_texts import QUERY, TEXTS

from ragprune.integrations import METADATA_KEYS, ORIGINAL_TEXT_KEY
from ragprune.integrations.langchain import RagpruneCompressor
from ragprune.ranking import prune, rank


def make_docs() -> list[Document]:
    return [
        Document(page_content=text, id=f"doc-{i}", metadata={"source": f"s{i}", "tags": ["a", i]})
        for i, text in enumerate(TEXTS)
    ]


def assert_faithful(outputs: list[Document], inputs: list[Document]) -> None:
    """Each output is one input (never merged), keeps its id and metadata, and its text is recoverable."""
    by_id = {doc.id: doc for doc in inputs}
    assert len({doc.id for doc in outputs}) == len(outputs)
    for rank_position, out in enumerate(outputs, start=1):
        source = by_id[out.id]
        assert set(out.metadata) == set(source.metadata) | set(METADATA_KEYS)
        assert {k: out.metadata[k] for k in source.metadata} == source.metadata
        original = out.metadata[ORIGINAL_TEXT_KEY]
        assert original == source.page_content
        assert inputs[out.metadata["ragprune_index"]] is source
        spans = out.metadata["ragprune_kept_spans"]
        assert out.page_content == " ".join(original[start:end] for start, end in spans)
        assert out.metadata["ragprune_rank"] == rank_position
    scores = [out.metadata["ragprune_score"] for out in outputs]
    assert scores == sorted(scores, reverse=True)


def test_compressor_reranks_prunes_and_keeps_ids_and_metadata(pruner):
    docs = make_docs()
    before = copy.deepcopy(docs)
    compressor = RagpruneCompressor(pruner=pruner)
    out = list(compressor.compress_documents(docs, QUERY))
    assert len(out) == len(docs)
    assert_faithful(out, docs)
    assert docs == before  # inputs untouched
    expected = rank(pruner, QUERY, TEXTS)
    assert [o.metadata["ragprune_index"] for o in out] == [d.index for d in expected]
    for o, d in zip(out, expected):
        assert o.metadata["ragprune_score"] == pytest.approx(d.score)
        assert o.metadata["ragprune_compression"] == pytest.approx(d.compression)


def test_prune_threshold_empties_text_but_never_drops_a_document(pruner):
    docs = make_docs()
    everything = list(RagpruneCompressor(pruner=pruner, prune_threshold=0.0).compress_documents(docs, QUERY))
    assert [o.page_content for o in everything] == [
        docs[o.metadata["ragprune_index"]].page_content for o in everything
    ]
    nothing = list(RagpruneCompressor(pruner=pruner, prune_threshold=1.0).compress_documents(docs, QUERY))
    assert len(nothing) == len(docs)
    assert all(o.page_content == "" and o.metadata["ragprune_compression"] == 1.0 for o in nothing)
    assert_faithful(nothing, docs)


def test_pruning_between_sentence_scores_keeps_a_strict_subset(pruner):
    (doc,) = prune(pruner, QUERY, TEXTS[:1])
    low, high = sorted(s.score for s in doc.sentences)
    compressor = RagpruneCompressor(pruner=pruner, prune_threshold=(low + high) / 2)
    (out,) = compressor.compress_documents(make_docs()[:1], QUERY)
    assert out.page_content and out.page_content != TEXTS[0] and out.page_content in TEXTS[0]
    assert 0.0 < out.metadata["ragprune_compression"] < 1.0
    assert_faithful([out], make_docs()[:1])


def test_top_n_and_score_threshold_are_the_only_cuts(pruner):
    docs = make_docs()
    ranked = rank(pruner, QUERY, TEXTS)
    top2 = list(RagpruneCompressor(pruner=pruner, top_n=2).compress_documents(docs, QUERY))
    assert [o.metadata["ragprune_index"] for o in top2] == [d.index for d in ranked.top_k(2)]
    bound = ranked.documents[2].score  # keeps exactly the first three (scores are distinct)
    above = list(RagpruneCompressor(pruner=pruner, score_threshold=bound).compress_documents(docs, QUERY))
    assert [o.metadata["ragprune_index"] for o in above] == [d.index for d in ranked.above(bound)]
    assert len(above) == 3
    both = list(
        RagpruneCompressor(pruner=pruner, top_n=2, score_threshold=bound).compress_documents(docs, QUERY)
    )
    assert len(both) == 2
    for outputs in (top2, above, both):
        assert_faithful(outputs, docs)


def test_empty_input_and_bad_settings(pruner):
    assert RagpruneCompressor(pruner=pruner).compress_documents([], QUERY) == []
    with pytest.raises(ValueError):
        RagpruneCompressor(pruner=pruner, top_n=0)
    with pytest.raises(ValueError):
        RagpruneCompressor(pruner=pruner, score_threshold=1.5)
    with pytest.raises(ValueError, match="is empty"):
        RagpruneCompressor(pruner=pruner).compress_documents(make_docs(), "")


def test_async_matches_sync_and_runs_the_model_off_the_event_loop(pruner, process_threads):
    compressor = RagpruneCompressor(pruner=pruner, top_n=3)
    docs = make_docs()

    async def compress() -> tuple[list[Document], int]:
        return list(await compressor.acompress_documents(docs, QUERY)), threading.get_ident()

    out, loop_thread = asyncio.run(compress())
    assert process_threads and process_threads[-1] != loop_thread
    assert out == list(compressor.compress_documents(docs, QUERY))


def test_contextual_compression_retriever_end_to_end(pruner):
    retrievers = pytest.importorskip(
        "langchain_classic.retrievers", reason="needs langchain-classic for ContextualCompressionRetriever"
    )
    store = InMemoryVectorStore(embedding=DeterministicFakeEmbedding(size=16))
    corpus = make_docs()
    store.add_documents(corpus, ids=[doc.id for doc in corpus])
    base = store.as_retriever(search_kwargs={"k": 3})
    retriever = retrievers.ContextualCompressionRetriever(
        base_compressor=RagpruneCompressor(pruner=pruner, top_n=2), base_retriever=base
    )
    retrieved = base.invoke(QUERY)
    assert len(retrieved) == 3
    out = retriever.invoke(QUERY)
    assert len(out) == 2
    assert_faithful(out, retrieved)
    expected = rank(pruner, QUERY, [doc.page_content for doc in retrieved], top_k=2)
    assert [doc.id for doc in out] == [retrieved[d.index].id for d in expected]
    assert asyncio.run(retriever.ainvoke(QUERY)) == out


@pytest.fixture()
def shipped_is_tiny(pruner, monkeypatch):
    """The shipped model, as the integrations load it by default, is the tiny test model here."""
    from ragprune.integrations import _common
    from ragprune.pipeline import RerankPruner

    loads = []
    monkeypatch.setattr(RerankPruner, "load", classmethod(lambda cls, *a, **k: loads.append(a) or pruner))
    _common.shipped_pruner.cache_clear()
    yield loads
    _common.shipped_pruner.cache_clear()


def test_no_arguments_uses_the_shipped_model_lazily(pruner, shipped_is_tiny):
    compressor = RagpruneCompressor()
    assert shipped_is_tiny == []  # nothing loaded until the first call
    out = list(compressor.compress_documents(make_docs(), QUERY))
    assert shipped_is_tiny == [()]  # RerankPruner.load() with no model: the shipped one
    assert [o.metadata["ragprune_index"] for o in out] == [d.index for d in rank(pruner, QUERY, TEXTS)]
    RagpruneCompressor().compress_documents(make_docs(), QUERY)
    assert len(shipped_is_tiny) == 1  # loaded once, shared


def test_drop_empty_leaves_out_documents_pruning_emptied(pruner):
    (doc,) = prune(pruner, QUERY, TEXTS[:1])
    low, high = sorted(s.score for s in doc.sentences)
    threshold = (low + high) / 2
    expected = [d.index for d in prune(pruner, QUERY, TEXTS, threshold=threshold) if d.kept_spans]
    assert 0 < len(expected) < len(TEXTS)
    compressor = RagpruneCompressor(pruner=pruner, prune_threshold=threshold, drop_empty=True)
    out = list(compressor.compress_documents(make_docs(), QUERY))
    assert [o.metadata["ragprune_index"] for o in out] == expected and all(o.page_content for o in out)
    first = RagpruneCompressor(pruner=pruner, prune_threshold=threshold, drop_empty=True, top_n=1)
    assert [o.metadata["ragprune_index"] for o in first.compress_documents(make_docs(), QUERY)] == expected[
        :1
    ]
    assert (
        RagpruneCompressor(pruner=pruner, prune_threshold=1.0, drop_empty=True).compress_documents(
            make_docs(), QUERY
        )
        == []
    )


def test_metadata_title_is_read_as_the_title(pruner):
    from ragprune import Document as RagpruneDocument

    docs = [Document(page_content=text, metadata={"title": "Fleas"}) for text in TEXTS[:2]]
    out = RagpruneCompressor(pruner=pruner).compress_documents(docs, QUERY)
    expected = rank(
        pruner, QUERY, [RagpruneDocument(str(i), t, title="Fleas") for i, t in enumerate(TEXTS[:2])]
    )
    assert [o.metadata["ragprune_score"] for o in out] == pytest.approx([d.score for d in expected])
    untitled = rank(pruner, QUERY, TEXTS[:2])
    assert [o.metadata["ragprune_score"] for o in out] != pytest.approx([d.score for d in untitled])
    assert all(o.metadata["title"] == "Fleas" for o in out)  # metadata untouched


def test_two_hops_prune_outside_the_evidence_chain(pruner):
    from sample_texts import MULTIHOP_PASSAGES, MULTIHOP_QUESTION, MULTIHOP_TITLES

    texts = [text for text in MULTIHOP_PASSAGES if text.strip()]
    titles = [title for text, title in zip(MULTIHOP_PASSAGES, MULTIHOP_TITLES) if text.strip()]
    docs = [Document(page_content=text, metadata={"title": title}) for text, title in zip(texts, titles)]
    out = RagpruneCompressor(pruner=pruner, prune_threshold=0.0, hops=2).compress_documents(
        docs, MULTIHOP_QUESTION
    )
    documents = [{"text": text, "title": title} for text, title in zip(texts, titles)]
    expected = prune(pruner, MULTIHOP_QUESTION, documents, threshold=0.0, hops=2)
    assert [o.page_content for o in out] == [d.pruned_text for d in expected]
    assert any(not o.page_content for o in out)
