"""Evaluation sets that training data must not repeat: their query files and the normalised-text key.

``training/build_data.py`` drops every training query whose normalised text equals an evaluation query;
``ragprune.training.synthetic`` also drops near-equal ones. The evaluation query texts are read only for
this check, never trained on.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from ragprune.data import read_beir_queries, read_pruning_jsonl, read_topics

EVAL_TOPICS = ("trec-dl/dl19/topics.tsv", "trec-dl/dl20/topics.tsv")
"""TREC DL evaluation topics (qid TAB text), relative to the data root."""
EVAL_PRUNING = (
    "pruning/hotpotqa_dev_distractor_100.jsonl",
    "pruning/wikiqa_dev_all.jsonl",
    "pruning/scifact_rationales_dev.jsonl",
    "pruning/trecqa_dev.jsonl",
)
"""Pruning evaluation sets (their questions), relative to the data root."""
EVAL_BEIR_QUERIES = ("beir/scifact/queries.jsonl",)
"""BEIR query files (every query, test or not), relative to the data root."""


def normalise_query(text: str) -> str:
    """Lower case, runs of non-word characters as one space: the key that finds repeated queries."""
    return re.sub(r"\W+", " ", text.lower()).strip()


def eval_query_texts(root: Path) -> set[str]:
    """Normalised texts of evaluation queries, used only to drop training queries that repeat one.

    ``root`` is the data root (``ragprune.data.data_root()``); FileNotFoundError if a file is missing.
    """
    texts = {normalise_query(t) for rel in EVAL_TOPICS for t in read_topics(root / rel).values()}
    for rel in EVAL_PRUNING:
        texts |= {normalise_query(e.question) for e in read_pruning_jsonl(root / rel)}
    for rel in EVAL_BEIR_QUERIES:
        texts |= {normalise_query(t) for t in read_beir_queries(root / rel).values()}
    return texts


EVAL_PASSAGES = ("trec-dl/dl19/passages.tsv.gz", "trec-dl/dl20/passages.tsv.gz")
"""Candidate passages of the TREC DL evaluation runs (pid TAB text, gzip)."""
EVAL_BEIR_QRELS = ("beir/scifact/qrels/test.tsv",)
"""BEIR test qrels (query-id TAB corpus-id TAB score, with a header line)."""


def normalise_passage(text: str) -> str:
    """Lower case, whitespace collapsed: the key that finds a passage text again."""
    return " ".join(text.lower().split())


def eval_passage_texts(root: Path) -> set[str]:
    """Normalised texts of the DL19/DL20 candidate passages, read only to keep them out of synthetic-query
    sources (a query generated from an evaluation passage would train on that passage as a positive).

    FileNotFoundError if a file is missing.
    """
    texts: set[str] = set()
    for rel in EVAL_PASSAGES:
        path = root / rel
        if not path.exists():
            raise FileNotFoundError(f"evaluation passages not found: {path}")
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                _, _, text = line.rstrip("\n").partition("\t")
                texts.add(normalise_passage(text))
    return texts


def beir_test_documents(root: Path) -> set[str]:
    """Corpus ids judged in the BEIR SciFact test qrels (the abstracts its test claims cite)."""
    docs: set[str] = set()
    for rel in EVAL_BEIR_QRELS:
        path = root / rel
        if not path.exists():
            raise FileNotFoundError(f"BEIR qrels not found: {path}")
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            parts = line.split("\t")
            if len(parts) >= 2:
                docs.add(parts[1].strip())
    return docs
