#!/usr/bin/env bash
# One GPU call: train the listwise head of a model in several settings side by side (one encoder pass,
# shared through --cache) and keep the setting with the best DL21 nDCG@10 (mean of the listwise and full
# modes; DL21 is the validation split, DL19/DL20/BEIR are never read). The chosen model stays in
# /tmp/list-head/chosen/model for the calls that follow on the warm machine, and comes back in $OUT.
# Usage (carry the data folder, e.g. .carry/lh, and .whl):
#   MODEL=ragprune/models/default DATA=.carry/lh [ARGS="--max-queries 6000"] \
#     bash training/gpu_list_head.sh "NAME:ARGS" ["NAME:ARGS" ...]
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null || true
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-runs/gpu-list-head}"
WORK=/tmp/list-head
mkdir -p "$OUT" "$WORK"
trap 'tar -C "$WORK" -cf "$OUT/runs.tar" --exclude=model --exclude=lists.pt .' EXIT
names=()
first=1
pids=()
for spec in "$@"; do
  name="${spec%%:*}"
  names+=("$name")
  # shellcheck disable=SC2086  # argument lists
  cmd=(python3 training/train_list_head.py --model "$MODEL" --data "$DATA" --out "$WORK/$name"
       --cache "$WORK/lists.pt" ${ARGS:-} ${spec#*:})
  if [ "$first" = 1 ]; then  # the first setting encodes the lists; the others wait for its cache
    "${cmd[@]}" > "$WORK/$name.log" 2>&1
    first=0
  else
    "${cmd[@]}" > "$WORK/$name.log" 2>&1 &
    pids+=($!)
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
chosen=$(python3 -c 'import json, sys
best = {n: json.load(open(f"/tmp/list-head/{n}/summary.json"))["best"] for n in sys.argv[1:]}
for n, b in best.items():
    print(n, {k: round(v, 4) if isinstance(v, float) else v for k, v in b.items()}, file=sys.stderr)
print(max(best, key=lambda n: best[n]["dl21_ndcg@10_full"] + best[n]["dl21_ndcg@10_listwise"]))' "${names[@]}")
echo "chosen: $chosen"
rm -rf "$WORK/chosen" && cp -r "$WORK/$chosen" "$WORK/chosen"
tar -C "$WORK/chosen" -cf - model | split -b 15m - "$OUT/model.tar.part-"
