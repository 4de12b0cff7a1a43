#!/usr/bin/env bash
# One unattended GPU call: train several variants of the default model side by side on the one H200,
# keep the one with the best DL21 validation nDCG@10 (a training split: never DL19/DL20/BEIR), and
# return it. Evaluation runs afterwards (eval/evaluate.py), on the CPU or in another call, because the
# fp16 backbone (45 MB) and a trained model do not fit one 64 MiB carry.
#
# Usage (carry .carry/backbone, .carry/train and .whl; the shipped model must not travel, see
# training/README.md):
#   bash training/gpu_sweep.sh "NAME:TRAIN ARGS" ["NAME:TRAIN ARGS" ...]
#   e.g. bash training/gpu_sweep.sh "tau1:--tau 1.0" "tau05:--tau 0.5"
# Arguments common to every variant go in $COMMON. Results in $OUT: one <name>.log and <name>.json
# (summary) per variant, sweep.json, and model.tar.part-* (the chosen model, split under the 16 MiB
# per-file transfer limit).
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-runs/gpu-sweep}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
names=()
for spec in "$@"; do
  name="${spec%%:*}"
  names+=("$name")
  # shellcheck disable=SC2086  # the variant's and the common arguments are word lists
  python3 training/train.py --data .carry/train --backbone .carry/backbone --out "/tmp/$name" \
    ${COMMON:-} ${spec#*:} 2>&1 | grep --line-buffered -v "it/s]" > "$OUT/$name.log" &
done
wait
python3 - "${names[@]}" <<'PY'
import json, os, shutil, sys

out = os.environ.get("OUT", "runs/gpu-sweep")
results = {}
for name in sys.argv[1:]:
    path = f"/tmp/{name}/summary.json"
    if os.path.exists(path):
        shutil.copy(path, f"{out}/{name}.json")
        results[name] = json.load(open(path))["best_dl21_ndcg@10"]
best = max(results, key=results.get)
json.dump({"dl21_ndcg@10": results, "chosen": best}, open(f"{out}/sweep.json", "w"), indent=2)
print(json.dumps({"dl21_ndcg@10": results, "chosen": best}))
open("/tmp/chosen", "w").write(best)
PY
tar -C "/tmp/$(cat /tmp/chosen)" -cf - model | split -b 15m - "$OUT/model.tar.part-"
