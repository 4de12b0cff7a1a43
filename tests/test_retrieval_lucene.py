from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ragprune.retrieval import get_retriever
from ragprune.types import Document

pytest.importorskip("pyserini", reason="the lucene backend needs pyserini")
pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="the lucene backend needs Java 17")

CORPUS = {
    "flea": Document("flea", "A flea can live up to a year, depending on its hosts.", title="Fleas"),
    "eiffel": Document("eiffel", "The Eiffel Tower stands in Paris and was finished in 1889."),
    "tea": Document("tea", "Green tea is made from unoxidised leaves."),
    "cats": Document("cats", "Cats hunt fleas rarely; they groom themselves instead."),
}


def test_lucene_bm25_on_a_tiny_corpus(tmp_path: Path) -> None:
    retriever = get_retriever("lucene", index_dir=tmp_path / "index")
    retriever.index(CORPUS)
    assert (tmp_path / "index").is_dir()
    run = retriever.search({"q1": "how long do fleas live", "q2": "eiffel tower", "q3": "quantum"}, k=10)
    # Lucene's English analyzer stems "fleas" to "flea"; the title field is part of the indexed text.
    assert list(run["q1"])[:2] == ["flea", "cats"]
    assert list(run["q2"]) == ["eiffel"]
    assert run["q3"] == {}
    assert run["q1"]["flea"] > run["q1"]["cats"] > 0
