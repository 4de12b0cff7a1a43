#!/usr/bin/env bash
# One unattended GPU call: train several variants of the default model side by side on the one H200,
# then either keep the one with the best DL21 validation nDCG@10 or, with SOUP=1, their greedy weight
# average (training/soup.py). DL21 is a training split held out for validation; DL19/DL20/BEIR are
# never read. Evaluation runs afterwards (eval/evaluate.py), on the CPU or in another call, because
# the fp16 backbone (45 MB) and a trained model do not fit one 64 MiB carry.
#
# Usage (carry .carry/backbone, .carry/train and .whl; the shipped model must not travel, see
# training/README.md):
#   [SOUP=1] [COMMON="TRAIN ARGS"] bash training/gpu_sweep.sh "NAME:TRAIN ARGS" ["NAME:TRAIN ARGS" ...]
#   e.g. COMMON="--epochs 2 --tau 0.5" SOUP=1 bash training/gpu_sweep.sh "s13:--seed 13" "s14:--seed 14"
# Results in $OUT: runs.tar (each variant's log and summary, and the soup's), sweep.json, and
# model.tar.part-* (the chosen model, split under the 16 MiB per-file transfer limit).
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-runs/gpu-sweep}"
mkdir -p "$OUT" /tmp/sweep
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# whatever happens, bring back every log and summary written so far
trap 'tar -C /tmp/sweep -cf "$OUT/runs.tar" --exclude=model --exclude=checkpoint.pt .' EXIT
names=()
pids=()
for spec in "$@"; do
  [[ "$spec" == *:* ]] || { echo "variant '$spec' is not NAME:TRAIN ARGS" >&2; exit 2; }
  name="${spec%%:*}"
  [[ " ${names[*]} " != *" $name "* ]] || { echo "variant name '$name' used twice" >&2; exit 2; }
  names+=("$name")
  # shellcheck disable=SC2086  # the variant's and the common arguments are word lists
  python3 training/train.py --data .carry/train --backbone .carry/backbone --out "/tmp/sweep/$name" \
    ${COMMON:-} ${spec#*:} > "/tmp/sweep/$name.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "variant ${names[$i]} failed:" >&2; tail -20 "/tmp/sweep/${names[$i]}.log" >&2; failed=1; }
done
[ "$failed" = 0 ] || exit 1
grep -h "validation nDCG" /tmp/sweep/*.log
if [ "${SOUP:-0}" = 1 ]; then
  models=(); for name in "${names[@]}"; do models+=("/tmp/sweep/$name/model"); done
  python3 training/soup.py --models "${models[@]}" --data .carry/train --out /tmp/sweep/soup \
    > /tmp/sweep/soup.log 2>&1 || { tail -20 /tmp/sweep/soup.log; exit 1; }
  chosen=soup
else
  chosen=$(python3 -c 'import json, sys
scores = {n: json.load(open(f"/tmp/sweep/{n}/summary.json"))["best_dl21_ndcg@10"] for n in sys.argv[1:]}
print(max(scores, key=scores.get))' "${names[@]}")
fi
python3 -c 'import json, sys
print(json.dumps({"chosen": sys.argv[1], "summary": json.load(open(f"/tmp/sweep/{sys.argv[1]}/summary.json"))}))' \
  "$chosen" | tee "$OUT/sweep.json"
tar -C "/tmp/sweep/$chosen" -cf - model | split -b 15m - "$OUT/model.tar.part-"
