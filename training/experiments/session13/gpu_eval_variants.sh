#!/usr/bin/env bash
# On the warm GPU machine after training/gpu_sweep.sh: every variant's model (in /tmp/sweep/NAME/model)
# through eval/evaluate.py (reranking DL19/DL20/SciFact with the list modes where the model has a list
# head, and the pruning half), four at a time on the one H200. The choice among variants was already made
# by gpu_sweep.sh's rule on training splits; these numbers are read after it.
# Usage (device call carrying .carry/ev, the evaluation sets; the wheels and MiniLM come from the
# teacher pack in ~/tb): bash training/experiments/session13/gpu_eval_variants.sh NAME [NAME ...]
set -euo pipefail
OUT="${OUT:-runs/gpu-eval}"
mkdir -p "$OUT" /tmp/ev
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site ~/tb/whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 RAGPRUNE_DATA="$PWD/.carry/ev"
[ -f .carry/ev/beir/scifact/corpus.jsonl ] || gunzip -k .carry/ev/beir/scifact/corpus.jsonl.gz
trap 'tar -C /tmp/ev -cf "$OUT/eval.tar" .' EXIT
pids=()
for name in "$@"; do
  model="/tmp/sweep/$name/model"
  modes=pointwise
  grep -q listwise "$model/ragprune_config.json" && modes=pointwise,listwise,full
  python3 eval/evaluate.py ${EVAL_ARGS:-} --model "$model" --bi-encoder ~/tb/minilm --modes "$modes" \
    --out "/tmp/ev/$name" > "/tmp/ev/$name.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || echo "an evaluation failed (see its log)"; done
for name in "$@"; do
  echo "== $name"
  sed -n '/^## Gates/,/^## Pruning/p' "/tmp/ev/$name/results.md" 2>/dev/null | grep "^|" || tail -5 "/tmp/ev/$name.log"
done
