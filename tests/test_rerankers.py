"""One ``Reranker`` interface over the backends: the shared encoder and the bi-encoder cosine baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ragprune.pipeline.rerank_run import rerank_run
from ragprune.rerankers import BiEncoderReranker, Reranker, RerankPruner, SharedEncoderReranker
from ragprune.types import Document

QUERY = "how long do fleas live"
DOCS = [
    "The Eiffel Tower is in Paris.",
    "Adult fleas live for two to three months. Their eggs hatch in days.",
    "   ",
    "Cats groom themselves.",
]


@pytest.fixture(scope="module")
def bi_encoder() -> BiEncoderReranker:
    return BiEncoderReranker(device="cpu")  # all-MiniLM-L6-v2 from its PyPI package


def test_every_backend_is_a_reranker():
    assert SharedEncoderReranker is RerankPruner
    assert issubclass(RerankPruner, Reranker) and issubclass(BiEncoderReranker, Reranker)


def test_bi_encoder_ranks_by_the_cosine_of_its_embeddings(bi_encoder):
    results = bi_encoder.rank(QUERY, DOCS, doc_ids=["e", "f", "blank", "c"])
    assert [d.doc_id for d in results][-1] == "blank"
    assert results[0].doc_id == "f"
    vectors = bi_encoder.encode([QUERY, DOCS[1]])
    assert results["f"].logit == pytest.approx(float(vectors[1] @ vectors[0]), abs=1e-5)
    assert results["f"].result.scores == {"cosine": results["f"].logit}
    assert results["blank"].logit == -np.inf and results["blank"].score == 0.0
    # no pruning: every sentence kept
    assert results["f"].result.pruned_text == DOCS[1]


def test_bi_encoder_reranks_a_trec_run_like_the_shared_encoder(bi_encoder, pruner):
    corpus = {f"d{i}": Document(f"d{i}", text) for i, text in enumerate(DOCS) if text.strip()}
    run = {"q1": {doc: float(-i) for i, doc in enumerate(corpus)}}
    for backend in (bi_encoder, pruner):
        reranked = rerank_run(backend, {"q1": QUERY}, run, corpus, top_k=3, fusion="none")
        assert sorted(reranked.run["q1"]) == ["d0", "d1", "d3"]
        assert [p.document.id for p in reranked.results[0]] == sorted(
            reranked.run["q1"], key=lambda d: -reranked.run["q1"][d]
        )


def test_the_callers_model_is_not_cast_or_moved(tiny_model_dir):
    from ragprune.models import load_model

    model, tokenizer = load_model(tiny_model_dir)
    model.train()
    model.half()
    with RerankPruner(model, tokenizer, device="cpu", prepare_workers=0) as pruner:
        assert pruner.model is not model and pruner.model.encoder.dtype == torch.float32
        pruner.process(QUERY, DOCS)
    assert model.training and next(model.parameters()).dtype == torch.float16
