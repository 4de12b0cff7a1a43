#!/usr/bin/env bash
# Build a `fast` candidate from the shipped model on the GPU machine and judge it against the ship gate
# of issue 12 (training/README.md, "Session 7"): DAI's best layers (ragprune compress --structure layers),
# the vocabulary trimmed to the training data's most frequent tokens, then the default recipe's
# distillation (target: the teacher mixed with the shipped model's own scores), then
# eval/weight_pruning.py --candidate. Every stage is skipped when its output exists and train.py resumes
# from its checkpoint, so a run cut by the 10-minute call limit goes on when the same command runs again
# on the warm machine.
#
# Usage (carry .carry/wp and .whl; the session-6 data folder joined in ~/s6/train, training/README.md):
#   DATA=~/s6/train [SPARSITY=0.3334] [VOCAB=20000] [EPOCHS=4] [LR=1e-4] [WORK=~/fast] \
#     bash training/gpu_fast.sh
# SPARSITY is the share of the 6 layers removed (0.3334: 4 kept, 0.5: 3 kept). Results in $OUT:
# the gate table (weight_pruning-candidate.md/.json), the training log and summary, and the model in fp16
# (model.tar.part-*, under the 16 MiB per-file limit).
set -euo pipefail
: "${DATA:?set DATA to the build_data.py folder, e.g. ~/s6/train}"
SPARSITY="${SPARSITY:-0.3334}" VOCAB="${VOCAB:-20000}" EPOCHS="${EPOCHS:-4}" LR="${LR:-1e-4}"
WORK="${WORK:-$HOME/fast}" OUT="${OUT:-runs/gpu-fast}"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null || true
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 RAGPRUNE_DATA="$PWD/.carry/wp"
gunzip -kf .carry/wp/beir/scifact/corpus.jsonl.gz .carry/wp/pruning/wikiqa_train_pairs.tsv.gz
mkdir -p "$WORK" "$OUT"
ragprune() { python3 -c 'import sys; from ragprune.cli import main; sys.exit(main(sys.argv[1:]))' "$@"; }
init="$WORK/init-$SPARSITY-$VOCAB"
if [ ! -f "$init/model.safetensors" ]; then
  rm -rf "$init"
  ragprune compress --method gaprune --structure layers --sparsity "$SPARSITY" --domain-data domain \
    --general-data general --vocabulary-size "$VOCAB" \
    --vocabulary-texts "$DATA/pool.jsonl.gz" "$DATA/groups.jsonl.gz" "$DATA/spliced.jsonl.gz" \
    --device cuda --output "$init"
fi
if [ ! -f "$WORK/train-mix2/groups.jsonl.gz" ]; then
  python3 training/score_candidates.py --model ragprune/models/default --data "$DATA" --out "$WORK/scores.jsonl.gz"
  python3 training/mix_teacher.py --data "$DATA" --scores "$WORK/scores.jsonl.gz" --out "$WORK/train-mix2" --weight 2
fi
run="$WORK/run-$SPARSITY-$VOCAB-$EPOCHS-$LR"
if [ ! -f "$run/summary.json" ]; then
  python3 training/train.py --init "$init" --data "$WORK/train-mix2" --out "$run" --epochs "$EPOCHS" --lr "$LR" \
    --tau 1.0 --group-size 16 --queries-per-step 16 --target-recall 0.90 --token-weight 0.3
fi
cp "$run/train.log" "$run/summary.json" "$OUT/"
python3 eval/weight_pruning.py --device cuda --candidate "$run/model" --out "$OUT" 2>&1 | grep -v "it/s]"
tar -C "$run" -cf - model | split -b 15m - "$OUT/model.tar.part-"
