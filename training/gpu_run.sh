#!/usr/bin/env bash
# One unattended GPU call: train the default model, evaluate it (eval/evaluate.py, baselines included)
# and benchmark `process`, on the lent H200 (its own torch/transformers; no registry).
# Carried inputs (training/pack_for_gpu.sh makes them):
#   .carry/backbone  all-MiniLM-L6-v2 in fp16 (also the bi-encoder baseline of the evaluation)
#   .carry/train     the output of training/build_data.py
#   .carry/data      the evaluation sets (SciFact's corpus gzipped)
#   .whl             wheels the GPU image lacks (ir-measures, pytrec-eval-terrier, bm25s, PyStemmer)
# Results land in $OUT as they are produced: train.log, summary.json, model.tar.part-* (the model
# folder, split under the 16 MiB-per-file transfer limit), eval.tar (results.md/.json, pruning.png,
# bench_process.json). Extra arguments go to training/train.py.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 RAGPRUNE_DATA="$PWD/.carry/data"
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT" /tmp/eval
gunzip -kf .carry/data/beir/scifact/corpus.jsonl.gz
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 training/train.py --data .carry/train --backbone .carry/backbone --out /tmp/run "$@" 2>&1 \
  | grep -v "it/s]" | tee "$OUT/train.log"
cp /tmp/run/summary.json "$OUT/"
tar -C /tmp/run -cf - model | split -b 15m - "$OUT/model.tar.part-"
python3 eval/evaluate.py --model /tmp/run/model --bi-encoder .carry/backbone --out /tmp/eval 2>&1 \
  | grep -v "it/s]" | tail -60
python3 eval/bench_process.py --model /tmp/run/model --pairs 20000 --batch-sizes 256,512 --out /tmp/eval \
  2>&1 | tail -8
tar -C /tmp -cf "$OUT/eval.tar" eval
