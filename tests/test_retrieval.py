from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from ragprune.retrieval import BM25sRetriever, Retriever, get_retriever, retrieval_text
from ragprune.types import Document

CORPUS = {
    "flea": Document("flea", "A flea can live up to a year, depending on its hosts.", title="Fleas"),
    "eiffel": Document("eiffel", "The Eiffel Tower stands in Paris and was finished in 1889."),
    "tea": Document("tea", "Green tea is made from unoxidised leaves."),
    "paris": Document("paris", "Paris is the capital of France.", title="Paris"),
    "cats": Document("cats", "Cats hunt fleas rarely; they groom themselves instead.", metadata={"src": "x"}),
}


def test_retrieval_text_joins_title_and_text() -> None:
    assert retrieval_text(CORPUS["paris"]) == "Paris Paris is the capital of France."
    assert retrieval_text(CORPUS["tea"]) == "Green tea is made from unoxidised leaves."


def test_bm25s_ranks_matching_documents_and_stems() -> None:
    retriever = get_retriever("bm25s")
    assert isinstance(retriever, BM25sRetriever)
    retriever.index(CORPUS)
    run = retriever.search(
        {"q1": "how long do fleas live", "q2": "towers of Paris", "q3": "the of and"}, k=10
    )
    # "fleas" matches "flea" only through stemming; the title counts too.
    assert list(run["q1"])[:2] == ["flea", "cats"]
    assert set(run["q2"]) == {"eiffel", "paris"}
    assert run["q2"]["eiffel"] > run["q2"]["paris"]  # "tower" + "paris" beats "paris" alone
    assert run["q3"] == {}  # stopwords only: no document matches
    assert all(score > 0 for scores in run.values() for score in scores.values())


def test_bm25s_stemming_is_what_matches_singular_and_plural() -> None:
    stemmed, plain = get_retriever("bm25s"), get_retriever("bm25s", stemmer=None)
    stemmed.index(CORPUS)
    plain.index(CORPUS)
    assert set(stemmed.search({"q": "flea"}, k=3)["q"]) == {"flea", "cats"}
    assert set(plain.search({"q": "flea"}, k=3)["q"]) == {"flea"}  # "cats" only has "fleas"


def test_k_larger_than_the_corpus_and_stopwords_kept() -> None:
    retriever = get_retriever("bm25s", stopwords=None)
    retriever.index(CORPUS)
    assert set(retriever.search({"q": "the"}, k=100)["q"]) == {"eiffel", "paris"}


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda r: r.index({}), ValueError, "bm25s: the corpus is empty; pass at least one document"),
        (
            lambda r: r.index({"a": Document("a", " ")}),
            ValueError,
            "bm25s: 1 documents have no title or text (e.g. a); remove them or add their text",
        ),
        (lambda r: r.search({"q": "x"}), RuntimeError, "bm25s: call index(corpus) before search()"),
    ],
)
def test_misuse_errors(call: Callable[[Retriever], object], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as raised:
        call(get_retriever("bm25s"))
    assert str(raised.value) == message


def test_search_argument_errors() -> None:
    retriever = get_retriever("bm25s")
    retriever.index(CORPUS)
    with pytest.raises(ValueError, match="^k must be at least 1, got 0$"):
        retriever.search({"q": "x"}, k=0)
    with pytest.raises(ValueError, match=r"^1 queries are empty \(e.g. q\); pass query text$"):
        retriever.search({"q": "  "})


def test_unknown_backend() -> None:
    with pytest.raises(ValueError) as error:
        get_retriever("elastic")
    assert str(error.value) == "unknown retrieval backend 'elastic'; choose one of bm25s, lucene, dense"


def test_backends_share_the_interface() -> None:
    from ragprune.retrieval import DenseRetriever, LuceneRetriever

    assert all(issubclass(cls, Retriever) for cls in (BM25sRetriever, LuceneRetriever, DenseRetriever))


def test_bm25s_is_imported_without_letting_jax_reserve_the_gpu(monkeypatch):
    """bm25s starts JAX at import where JAX is installed; JAX must not reserve most of the GPU then, unless
    the user asked for it."""
    import sys

    from ragprune.retrieval.bm25 import import_bm25s

    monkeypatch.delitem(sys.modules, "jax", raising=False)
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    assert import_bm25s().BM25 is not None
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")
    import_bm25s()
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"


def test_bm25s_breaks_ties_in_corpus_order_at_any_depth() -> None:
    # equal scores must not come back in whatever order NumPy's partition leaves them (it differs between
    # machines, and so would every group or run built from them)
    corpus = {f"d{i}": Document(f"d{i}", "fleas live on cats") for i in (7, 3, 9, 1, 5)}
    corpus["best"] = Document("best", "fleas fleas live")
    retriever = get_retriever("bm25s")
    retriever.index(corpus)
    for k in (1, 3, 6):
        hits = retriever.search({"q": "fleas"}, k=k)["q"]
        assert list(hits) == ["best", "d7", "d3", "d9", "d1", "d5"][:k]
    # a tie far wider than the hits fetched beyond k, next to a query without one
    many = {f"d{i}": Document(f"d{i}", "fleas live on cats") for i in range(300)}
    many["dog"] = Document("dog", "dogs bark")
    retriever.index(many)
    run = retriever.search({"wide": "fleas", "narrow": "dogs"}, k=5)
    assert list(run) == ["wide", "narrow"]
    assert list(run["wide"]) == ["d0", "d1", "d2", "d3", "d4"] and list(run["narrow"]) == ["dog"]
