"""The shipped model's output on TREC DL 2019 (BM25 top-100, CPU) against a stored reference.

The reference holds every pair's logit, probability, sentence spans, sentence scores and keep decisions,
written by ``python tests/test_shipped_model_reference.py --write`` before a refactor. On the machine
and torch build that wrote it the output must be bit-identical (the digest); elsewhere (another CPU's
vector units reorder float sums) scores must agree to 1e-4, spans exactly, and keep decisions except for
sentences whose score lies within 1e-4 of the threshold. Retraining the model means rewriting it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
from shared_data import dataset_dir, needs_data

REFERENCE = Path(__file__).parent / "fixtures" / "dl19_bm25_top100_shipped.json.gz"
TOLERANCE = 1e-4


def _machine() -> dict[str, str]:
    return {"torch": torch.__version__.split("+")[0], "cpu": torch.backends.cpu.get_cpu_capability()}


def current_output() -> list[dict]:
    """One record per (query, passage) of the DL19 BM25 top-100, in run order."""
    from ragprune.data import load_trec_dl, ranked_items
    from ragprune.pipeline import RerankPruner
    from ragprune.types import Document, Query

    dl19 = load_trec_dl(dataset_dir("trec-dl", "dl19"))
    qids = sorted(dl19.run)
    heads = [
        [Document(doc, dl19.passages[doc]) for doc, _ in ranked_items(dl19.run[qid])[:100]] for qid in qids
    ]
    with RerankPruner.load(None, device="cpu", progress=False) as pruner:
        results = pruner.process([Query(q, dl19.topics[q]) for q in qids], heads, reorder=False)
    return [
        {
            "qid": result.query.id,
            "doc": passage.document.id,
            "logit": passage.logit,
            "probability": passage.probability,
            "spans": [[s.span.start, s.span.end] for s in passage.sentences],
            "scores": [s.score for s in passage.sentences],
            "kept": [s.kept for s in passage.sentences],
            "pruned": passage.pruned_text,
        }
        for result in results
        for passage in result.passages
    ]


def digest(records: list[dict]) -> str:
    """sha256 of the records with every float written exactly (``repr``)."""
    return hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()


@needs_data
def test_shipped_model_output_matches_reference() -> None:
    stored = json.loads(gzip.decompress(REFERENCE.read_bytes()))
    records = current_output()
    if stored["machine"] == _machine():
        assert digest(records) == stored["digest"]
        return
    threshold = stored["threshold"]
    assert [(r["qid"], r["doc"]) for r in records] == [(r["qid"], r["doc"]) for r in stored["records"]]
    for got, want in zip(records, stored["records"]):
        where = f"{got['qid']}/{got['doc']}"
        assert got["logit"] == pytest.approx(want["logit"], abs=TOLERANCE), where
        assert got["probability"] == pytest.approx(want["probability"], abs=TOLERANCE), where
        assert got["spans"] == want["spans"], where
        assert got["scores"] == pytest.approx(want["scores"], abs=TOLERANCE), where
        for kept, want_kept, score in zip(got["kept"], want["kept"], want["scores"]):
            assert kept == want_kept or abs(score - threshold) < TOLERANCE, where


def _write() -> None:
    from ragprune.models.config import RerankPruneConfig
    from ragprune.models.registry import DEFAULT_MODEL_DIR

    records = current_output()
    stored = {
        "machine": _machine(),
        "threshold": RerankPruneConfig.load(DEFAULT_MODEL_DIR).threshold,
        "digest": digest(records),
        "records": records,
    }
    REFERENCE.write_bytes(gzip.compress(json.dumps(stored).encode(), mtime=0))
    print(f"wrote {REFERENCE} ({len(records)} pairs, digest {stored['digest'][:16]})")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_shipped_model_reference.py --write")
    _write()
