#!/usr/bin/env bash
# One unattended GPU call: train the default model, then benchmark `process` with it.
# Runs on the lent H200 (its own torch/transformers; no registry): carried inputs are
#   .carry/backbone  all-MiniLM-L6-v2 in fp16 (training/pack_for_gpu.sh makes it)
#   .carry/train     the output of training/build_data.py
#   .carry/data      the DL19 files the benchmark reads
#   .whl             wheels of what the GPU image lacks (ir-measures, pytrec-eval-terrier)
# Results land in $OUT: train.log, summary.json, model.tar.part-* (the model folder, split to fit
# the 16 MiB-per-file transfer limit), bench_process.json.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 RAGPRUNE_DATA="$PWD/.carry/data"
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 training/train.py --data .carry/train --backbone .carry/backbone --out /tmp/run "$@" 2>&1 \
  | grep -v "it/s]" | tee "$OUT/train.log"
cp /tmp/run/summary.json "$OUT/"
tar -C /tmp/run -cf - model | split -b 15m - "$OUT/model.tar.part-"
python3 eval/bench_process.py --model /tmp/run/model --pairs 20000 --batch-sizes 256,512 --out /tmp/bench
cp /tmp/bench/bench_process.json "$OUT/"
