#!/usr/bin/env bash
# One unattended GPU call: train several variants of the default model side by side on the one H200,
# then either keep the one with the best DL21 validation nDCG@10 or, with SOUP=1, their greedy weight
# average (training/soup.py). DL21 is a training split held out for validation; DL19/DL20/BEIR are
# never read. Evaluation runs afterwards (eval/evaluate.py), on the CPU or in another call, because
# the fp16 backbone (45 MB) and a trained model do not fit one 64 MiB carry.
#
# Usage (carry .carry/train and .whl, and .carry/backbone unless START names another start):
#   [SOUP=1 [SOUP_WITH="MODEL_FOLDER ..."]] [DATA=.carry/train] [START="--init ragprune/models/default"] \
#     [COMMON="TRAIN ARGS"] [EVAL=.carry/eval] [WAIT=SECONDS] [SWEEP=/tmp/sweep] [WHEELS=.whl] \
#     bash training/gpu_sweep.sh "NAME:TRAIN ARGS" ["NAME:TRAIN ARGS" ...]
#   e.g. COMMON="--epochs 2 --tau 0.5" SOUP=1 bash training/gpu_sweep.sh "s13:--seed 13" "s14:--seed 14"
# LAUNCH="torchrun --standalone --nproc_per_node 2" trains the variant data-parallel on 2 GPUs
# (ragprune.training.distributed); one variant per call then, since every torchrun takes all the GPUs.
# SOUP_WITH adds other model folders of the same backbone to the soup's ingredients (e.g.
# ragprune/models/default: the soup may keep the shipped model's ranking); the soup is thresholded with
# the first variant's settings (soup.py). Without SOUP the variant with the best DL21 nDCG@10 is kept
# among those whose held-out pruning (train.py's summary: training questions held out by build_data.py
# and their spliced passages) keeps gold recall >= 0.9 and drops >= 50% of the other sentences, pooled
# and on the held-out WikiQA and SciFact gold passages, and removes >= 60% of the held-out candidate
# lists' text; if none does, the one whose lowest dropped share is highest at recall >= 0.9; if none
# keeps that recall, the best DL21 (ragprune.training.selection).
# The rule only reads training splits.
# With EVAL set (a folder holding trec-dl/dl19 and trec-dl/dl20), the chosen model then reranks their
# BM25 top-100 (reported, never used for the choice).
# Results in $OUT: runs.tar (each variant's log and summary, and the soup's), sweep.json, and
# model.tar.part-* (the chosen model, split under the 16 MiB per-file transfer limit).
# WAIT=N trains the variants detached (setsid: they outlive the 10-minute call while the machine stays
# warm) and waits at most N seconds for them: until every variant is done the call prints their progress
# and "still training: run the same command again" and exits 0; a variant already running or done is not
# started again, a failed one (or one killed without a status) is started again (train.py resumes from
# its epoch checkpoint); a name already started with other arguments in SWEEP is refused. Without WAIT
# the variants train in the call and it waits for all of them. SWEEP is the work folder; WHEELS the
# folder of wheels installed first (if it holds any).
set -euo pipefail
if [ -n "${WAIT:-}" ] && [[ ! "$WAIT" =~ ^[0-9]+$ ]]; then
  echo "WAIT must be a whole number of seconds, got '$WAIT'" >&2; exit 2
fi
WHEELS="${WHEELS:-.whl}"  # the wheels that travel with the call (none: nothing to install)
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$WHEELS"/*.whl
fi
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-runs/gpu-sweep}" SWEEP="${SWEEP:-/tmp/sweep}"
mkdir -p "$OUT" "$SWEEP"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
# whatever happens, bring back every log and summary written so far
# (detached variants may write meanwhile: tar's complaint must not replace the call's exit status)
trap 'tar -C "$SWEEP" -cf "$OUT/runs.tar" --exclude=model --exclude=checkpoint.pt . || echo "runs.tar incomplete" >&2' EXIT
if [ -n "${LAUNCH:-}" ] && [ "$#" -gt 1 ]; then
  echo "LAUNCH trains data-parallel on every GPU: give one variant per call, not $#" >&2
  exit 2
fi
names=()
declare -A commands=()  # name -> its train.py command line, quoted for eval (printf %q)
for spec in "$@"; do
  [[ "$spec" == *:* ]] || { echo "variant '$spec' is not NAME:TRAIN ARGS" >&2; exit 2; }
  name="${spec%%:*}"
  [[ " ${names[*]} " != *" $name "* ]] || { echo "variant name '$name' used twice" >&2; exit 2; }
  names+=("$name")
  # shellcheck disable=SC2206  # the variant's and the common arguments are word lists
  train_cmd=(${LAUNCH:-python3} training/train.py --data "${DATA:-.carry/train}" ${START:---backbone .carry/backbone}
    --out "$SWEEP/$name" ${COMMON:-} ${spec#*:})
  commands[$name]=$(printf '%q ' "${train_cmd[@]}")
  if [ -n "${WAIT:-}" ] && [ -e "$SWEEP/$name.args" ] && [ "$(cat "$SWEEP/$name.args")" != "${commands[$name]}" ]; then
    echo "variant '$name' in $SWEEP was started with other arguments: give it another name or SWEEP" >&2
    exit 2
  fi
done
pids=()
for name in "${names[@]}"; do
  run="$SWEEP/$name"
  eval "train_cmd=(${commands[$name]})"
  if [ -z "${WAIT:-}" ]; then
    rm -f "$run.done" "$run.failed" "$run.args"
    "${train_cmd[@]}" > "$run.log" 2>&1 &
    pids+=($!)
    continue
  fi
  # a detached variant holds $run.lock while it trains (released however it ends, unlike a pid that a
  # zombie or another process can hold); checked before .done, which it writes before releasing the lock
  flock -n "$run.lock" true || continue
  [ -e "$run.done" ] && continue
  rm -f "$run.failed"
  printf '%s' "${commands[$name]}" > "$run.args"
  setsid nohup flock "$run.lock" bash -c '"${@:2}" >> "$1.log" 2>&1 && touch "$1.done" || touch "$1.failed"' \
    sweep_variant "$run" "${train_cmd[@]}" </dev/null >/dev/null 2>&1 &
done
if [ -n "${WAIT:-}" ]; then
  waited=0
  while :; do
    pending=()
    for name in "${names[@]}"; do
      [ -e "$SWEEP/$name.done" ] || [ -e "$SWEEP/$name.failed" ] || pending+=("$name")
    done
    [ "${#pending[@]}" = 0 ] && break
    if [ "$waited" -ge "$WAIT" ]; then
      for name in "${pending[@]}"; do echo "== $name"; tail -n 2 "$SWEEP/$name.log" 2>/dev/null || true; done
      echo "still training: run the same command again"
      exit 0
    fi
    sleep 5
    waited=$((waited + 5))
  done
fi
failed=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "variant ${names[$i]} failed:" >&2; tail -20 "$SWEEP/${names[$i]}.log" >&2; failed=1; }
done
for name in "${names[@]}"; do
  if [ -e "$SWEEP/$name.failed" ]; then
    echo "variant $name failed (run the same command again to resume it):" >&2
    tail -20 "$SWEEP/$name.log" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
grep -h "validation nDCG" "$SWEEP"/*.log || true  # a resumed run that trained nothing logs none
if [ "${SOUP:-0}" = 1 ]; then
  models=(); for name in "${names[@]}"; do models+=("$SWEEP/$name/model"); done
  # shellcheck disable=SC2206  # SOUP_WITH is a list of folders
  models+=(${SOUP_WITH:-})
  python3 training/soup.py --models "${models[@]}" --data "${DATA:-.carry/train}" --out "$SWEEP/soup" \
    > "$SWEEP/soup.log" 2>&1 || { tail -20 "$SWEEP/soup.log"; exit 1; }
  chosen=soup
else
  chosen=$(python3 -c 'import json, sys
from ragprune.training.selection import choose_variant
print(choose_variant({n: json.load(open(f"{sys.argv[1]}/{n}/summary.json")) for n in sys.argv[2:]}))' \
    "$SWEEP" "${names[@]}")
fi
python3 -c 'import json, sys
print(json.dumps({"chosen": sys.argv[2], "summary": json.load(open(f"{sys.argv[1]}/{sys.argv[2]}/summary.json"))}))' \
  "$SWEEP" "$chosen" | tee "$OUT/sweep.json"
tar -C "$SWEEP/$chosen" -cf - model | split -b 15m - "$OUT/model.tar.part-"
if [ -n "${EVAL:-}" ]; then
  for set in dl19 dl20; do
    d="$EVAL/trec-dl/$set"
    python3 -c 'import sys; from ragprune.cli import main; sys.exit(main(sys.argv[1:]))' rerank --queries "$d/topics.tsv" --run "$d/bm25.top100.trec" \
      --passages "$d/passages.tsv.gz" --qrels "$d/qrels.txt" --model "$SWEEP/$chosen/model" \
      --output "$SWEEP/$set.trec" 2>&1 | grep -v "it/s" | tail -3 | sed "s/^/$set: /"
  done
fi
