"""Readers and writers for the data ragprune evaluates and trains on.

TREC topics/qrels/runs/passages, TREC DL sets, BEIR data sets and sentence-level pruning JSONL; all
readers validate their input and raise :class:`DataFormatError` naming the file, line and fix.
"""

from __future__ import annotations

from ragprune.data.beir import BeirDataset, load_beir, read_beir_corpus, read_beir_qrels, read_beir_queries
from ragprune.data.errors import DataFormatError, DataMismatchError
from ragprune.data.formats import read_any_qrels, read_corpus, read_queries
from ragprune.data.paths import data_root, resolve_dataset_dir
from ragprune.data.pruning import PruningContext, PruningExample, read_pruning_jsonl, write_pruning_jsonl
from ragprune.data.trec import (
    Qrels,
    Run,
    common_queries,
    format_run,
    ranked_items,
    read_passages,
    read_qrels,
    read_run,
    read_topics,
    write_run,
)
from ragprune.data.trec_dl import TrecDLSet, load_trec_dl

__all__ = [
    "BeirDataset",
    "DataFormatError",
    "DataMismatchError",
    "PruningContext",
    "PruningExample",
    "Qrels",
    "Run",
    "TrecDLSet",
    "common_queries",
    "data_root",
    "format_run",
    "load_beir",
    "load_trec_dl",
    "ranked_items",
    "read_any_qrels",
    "read_beir_corpus",
    "read_beir_qrels",
    "read_beir_queries",
    "read_corpus",
    "read_passages",
    "read_pruning_jsonl",
    "read_qrels",
    "read_queries",
    "read_run",
    "read_topics",
    "resolve_dataset_dir",
    "write_pruning_jsonl",
    "write_run",
]
