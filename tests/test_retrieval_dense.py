from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_models import minilm_tokenizer_path, tiny_encoder_config

from ragprune.retrieval import get_retriever, retrieval_text
from ragprune.types import Document

pytest.importorskip("sentence_transformers", reason="dense backend: needs sentence-transformers")
pytest.importorskip("faiss", reason="dense backend: needs faiss-cpu")

CORPUS = {
    "flea": Document("flea", "a flea can live a year", title="fleas"),
    "eiffel": Document("eiffel", "the eiffel tower paris"),
    "tea": Document("tea", "green tea leaves"),
    "cats": Document("cats", "cats hunt fleas"),
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers folder: 2-layer BERT (hidden 32, random weights) with MiniLM's tokenizer
    and mean pooling."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_tokenizer_path())
    root = tmp_path_factory.mktemp("tiny_dense")
    torch.manual_seed(0)
    config = tiny_encoder_config(BertConfig, vocab_size=tokenizer.vocab_size, max_position_embeddings=64)
    backbone = root / "backbone"
    BertModel(config).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    transformer = Transformer(str(backbone), max_seq_length=32)
    model = SentenceTransformer(modules=[transformer, Pooling(config.hidden_size, "mean")], device="cpu")
    model.save(str(root / "model"))
    return root / "model"


def test_dense_scores_are_exact_cosines(tiny_model: Path) -> None:
    retriever = get_retriever("dense", model=tiny_model, device="cpu")
    retriever.index(CORPUS)
    queries = {"same": retrieval_text(CORPUS["tea"]), "other": "cat hunt flea"}
    run = retriever.search(queries, k=3)
    # A query identical to a document's indexed text finds it first, at cosine 1.
    assert next(iter(run["same"])) == "tea"
    assert run["same"]["tea"] == pytest.approx(1.0, abs=1e-5)
    # faiss returns the exact top-3 by cosine: compare with a brute-force computation.
    docs = retriever.encode([retrieval_text(doc) for doc in CORPUS.values()])
    cosines = docs @ retriever.encode(["cat hunt flea"])[0]
    expected = sorted(zip(CORPUS, cosines.tolist(), strict=True), key=lambda item: -item[1])[:3]
    assert list(run["other"]) == [doc_id for doc_id, _ in expected]
    assert list(run["other"].values()) == pytest.approx([score for _, score in expected], abs=1e-5)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        get_retriever("dense", model=tmp_path / "nope")
    assert str(error.value) == (
        f"dense model folder not found: {tmp_path / 'nope'}; pass a local sentence-transformers folder"
    )
