#!/usr/bin/env bash
# Set up (idempotent), then rerank + prune the BM25 top-100 of TREC DL 2019 with the shipped default
# model and print nDCG@10 (with the BM25 input for comparison) and the share of text pruning removed.
# --fusion none: the model alone; the library default (rrf:60) is for first stages stronger than BM25 (README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA="${RAGPRUNE_DATA:-../shared/data}"
DL19="$DATA/trec-dl/dl19"
mkdir -p runs
.venv/bin/ragprune rerank \
  --queries "$DL19/topics.tsv" --run "$DL19/bm25.top100.trec" --passages "$DL19/passages.tsv.gz" \
  --qrels "$DL19/qrels.txt" --top-k 100 --fusion none \
  --output runs/dl19.ragprune.trec --pruned-output runs/dl19.ragprune.pruned.jsonl
