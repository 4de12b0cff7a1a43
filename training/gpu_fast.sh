#!/usr/bin/env bash
# Build `fast` candidates from the shipped model on the GPU machine and judge them against issue 12's ship
# gate (training/README.md, "Session 8"): DAI's best layers (ragprune compress --structure layers), then a
# long recovery that distils the shipped model itself (rank logits, token probabilities and last hidden
# states: weight_pruning.recovery) on unlabelled web-search groups and the training splits' groups, the
# vocabulary trimmed to those groups' most frequent tokens. Needs no teacher scores and no training-data
# build: every source is read from RAGPRUNE_DATA (eval/weight_pruning.py --pack-data .carry/wp).
#
# The variants train in the background, one after another or (PARALLEL=1) all at once (setsid: a run
# outlives the 10-minute call while the machine stays warm); each call waits up to WAIT seconds and prints
# their progress. Once all are done it ranks them on DL21 (the validation split; nDCG@10 of reranking its
# BM25 top-100, every qrel) and runs the gate (eval/weight_pruning.py --candidate: DL19, SciFact, WikiQA, pairs/s on the H200 and its CPU)
# for the best of each layer count only. Repeat the same command on the warm machine until it prints the
# gate. Usage (carry .carry/wp and .whl):
#   [VARIANTS="l4a:0.3334:1e-4 l4b:0.3334:2e-4 l3:0.5:2e-4"] [STEPS=5400] [VOCAB=20000] [WAIT=540] \
#     [PARALLEL=1] [GATE_AFTER=240] bash training/gpu_fast.sh
# A variant is NAME:SPARSITY:LR[:RECOVER_SEED[:TEACHER:WEIGHT]] (SPARSITY: share of the 6 layers removed;
# RECOVER_SEED: compress --recover-seed, default 0; TEACHER: a teacher-score file in .carry/wp written by
# training/recovery_teacher.py for these groups, mixed into the rank target with share WEIGHT:
# compress --recover-teacher/--recover-teacher-weight). ARGS_NAME (an environment variable per variant) adds
# compress options to variant NAME, e.g. ARGS_k5="--keep-layers 0 1 2 5 --recover-layer-weight 1"; with
# --keep-layers the layers are the caller's, not DAI's (no --method; ARGS_NAME is parsed by bash twice, so
# keep quotes out of it). PARALLEL=1 trains every variant at once: on the H200 four took
# 800 s together against 274 s for one alone (session 10), 1.4x the throughput of one after another.
# A variant that failed stops the call before the ranking; the next call trains it again once no job
# runs. Results in $OUT (8 files at most come back): results.tar (the DL21 scores dl21.tsv, the gate tables gate-NAME/, the logs and
# compression reports) and each gated model in fp16 (model-NAME.tar.part-*, 15 MB parts).
set -euo pipefail
VARIANTS="${VARIANTS:-l4a:0.3334:1e-4 l4b:0.3334:2e-4 l3:0.5:2e-4}"
STEPS="${STEPS:-5400}" VOCAB="${VOCAB:-20000}" WAIT="${WAIT:-540}"
WORK="${WORK:-$HOME/fast}" OUT="${OUT:-runs/gpu-fast}"
RECOVER_DATA="msmarco-dev nq-train wikiqa-train scifact-train hotpotqa-train msmarco-triples"
for variant in $VARIANTS; do  # a name is also part of the ARGS_NAME variable: a shell identifier
  name="${variant%%:*}"
  if [[ ! "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    echo "variant name '$name' must be letters, digits and _ (not starting with a digit): ARGS_$name is a variable" >&2
    exit 2
  fi
done
GATE_AFTER="${GATE_AFTER:-240}"
if [[ ! "$GATE_AFTER" =~ ^[0-9]+$ ]]; then
  echo "GATE_AFTER must be a whole number of seconds, got '$GATE_AFTER'" >&2; exit 2
fi
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null || true
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 RAGPRUNE_DATA="$PWD/.carry/wp"
# the GPU image has JAX, which bm25s (the recovery data's BM25) starts at import and which would reserve
# 75% of the GPU's memory; ragprune's BM25 now turns that reservation off, and here JAX keeps to the CPU
export JAX_PLATFORMS=cpu XLA_PYTHON_CLIENT_PREALLOCATE=false
(cd .carry/wp && xargs gunzip -kf < gunzip.txt)  # the files eval/weight_pruning.py --pack-data gzipped
mkdir -p "$WORK" "$OUT"
cli='import sys; from ragprune.cli import main; sys.exit(main(sys.argv[1:]))'

# one background job trains the variants one after another (PARALLEL=1: one job per variant); a variant
# that failed is started again, one that is done is kept
if ! pgrep -f "gpu_fast_chain" >/dev/null; then
  chain=""
  for variant in $VARIANTS; do
    IFS=: read -r name sparsity lr seed teacher weight <<<"$variant"
    taught=""
    [ -n "${teacher:-}" ] && taught="--recover-teacher $RAGPRUNE_DATA/$teacher --recover-teacher-weight ${weight:-0.5}"
    extra_name="ARGS_$name"; extra="${!extra_name:-}"
    choice="--method gaprune --domain-data domain --general-data general"
    [[ "$extra" == *--keep-layers* ]] && choice=""
    run="$WORK/$name"
    [ -e "$run/done" ] && continue
    rm -rf "$run" && mkdir -p "$run"
    # DAI layer choice on the built-in calibration recipes (or the ARGS_NAME --keep-layers), then recovery
    # on every group of RECOVER_DATA
    # (16 groups of 16 passages per step), then the vocabulary counted on those groups; fp16 copy last
    chain+="{ python3 -c '$cli' compress $choice --structure layers --sparsity $sparsity $extra \
      --candidates 16 --recover-data $RECOVER_DATA \
      --recover-steps $STEPS --recover-groups-per-step 16 --recover-lr $lr --recover-seed ${seed:-0} $taught \
      --vocabulary-size $VOCAB \
      --device cuda --output $run/model \
    && python3 -c 'import sys, torch; from ragprune.models.registry import load_model
m, t = load_model(sys.argv[1]); m.save_pretrained(sys.argv[2], t, dtype=torch.float16)' $run/model $run/fp16 \
    && touch $run/done || touch $run/failed; } >$run/log.txt 2>&1; "
    if [ "${PARALLEL:-0}" = 1 ]; then
      setsid nohup bash -c "$chain" gpu_fast_chain >/dev/null 2>&1 </dev/null &
      chain=""
    fi
  done
  [ -n "$chain" ] && setsid nohup bash -c "$chain" gpu_fast_chain >/dev/null 2>&1 </dev/null &
fi

waited=0
while :; do
  pending=0
  for variant in $VARIANTS; do
    name="${variant%%:*}"
    [ -e "$WORK/$name/done" ] || [ -e "$WORK/$name/failed" ] || pending=$((pending + 1))
  done
  [ "$pending" = 0 ] && break
  if [ "$waited" -ge "$WAIT" ]; then
    for variant in $VARIANTS; do
      name="${variant%%:*}"; echo "== $name"; tail -c 400 "$WORK/$name/log.txt" | tr '\r' '\n' | tail -3
    done
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
    echo "still training: run the same command again"; exit 0
  fi
  sleep 15; waited=$((waited + 15))
done
failed=$(for variant in $VARIANTS; do name="${variant%%:*}"; [ ! -e "$WORK/$name/failed" ] || echo "$name"; done)
if [ -n "$failed" ]; then  # rank only complete sets: dl21.tsv is written once
  for name in $failed; do echo "== $name failed:"; tail -5 "$WORK/$name/log.txt"; done
  echo "run the same command again to train the failed variants anew"; exit 1
fi
# ranking on DL21 and the gate take ~30 s + ~130 s per gated variant: a call that has run more than
# GATE_AFTER seconds leaves them to the next call, which then has its 600 s for them (session 12's call
# that waited 500 s was cut off inside the gate); each gated variant is also started only with time left
if [ "$SECONDS" -gt "$GATE_AFTER" ]; then
  echo "every variant is trained; run the same command again for the DL21 ranking and the gate"; exit 0
fi

dl=.carry/wp/trec-dl/dl21
score_dl21() {  # model folder, run file -> nDCG@10 of reranking DL21's BM25 top-100 (--fusion none)
  python3 -c "$cli" rerank --queries $dl/topics.tsv --run $dl/bm25.top100.trec --passages $dl/passages.tsv.gz \
    --output "$2" --fusion none --model "$1" --device cuda --batch-size 256 >/dev/null 2>&1
  python3 -c "$cli" eval --qrels $dl/qrels.txt --run "$2" --measures nDCG@10 | cut -f2
}
scores="$WORK/dl21.tsv"  # name, sparsity, lr, DL21 nDCG@10
if [ ! -f "$scores" ]; then
  printf 'default\t-\t-\t%s\n' "$(score_dl21 ragprune/models/default "$WORK/default.trec")" >"$scores.tmp"
  for variant in $VARIANTS; do
    IFS=: read -r name sparsity lr _ <<<"$variant"
    [ -e "$WORK/$name/done" ] || continue
    printf '%s\t%s\t%s\t%s\n' "$name" "$sparsity" "$lr" "$(score_dl21 "$WORK/$name/fp16" "$WORK/$name.trec")" \
      >>"$scores.tmp"
  done
  mv "$scores.tmp" "$scores"
fi
results="$WORK/results"  # everything small, sent back as one tar ($OUT takes at most 8 files)
mkdir -p "$results"
for variant in $VARIANTS; do
  name="${variant%%:*}"
  cp "$WORK/$name/log.txt" "$results/log-$name.txt"
  [ -e "$WORK/$name/done" ] && cp "$WORK/$name/model/compression.json" "$results/compression-$name.json"
done
cp "$scores" "$results/"
cat "$scores"
# the best variant of each sparsity (layer count) on DL21 goes to the gate; the others are never evaluated
for name in $(tail -n +2 "$scores" | sort -t$'\t' -k2,2 -k4,4gr | awk -F'\t' '!seen[$2]++ {print $1}'); do
  gate="$results/gate-$name"
  if [ ! -f "$gate/done" ] && [ "$SECONDS" -gt 420 ]; then  # ~130 s a gate: not past the 600-s call
    echo "gate of $name not started: run the same command again"; exit 0
  fi
  if [ ! -f "$gate/done" ]; then
    mkdir -p "$gate"
    # the table's 256-row batches, and 1024-row ones
    for rows in 256 1024; do
      python3 eval/weight_pruning.py --device cuda --candidate "$WORK/$name/fp16" --out "$gate" \
        --batch-size $rows --suffix=-batch$rows 2>&1 | grep -v "it/s]"
    done
    touch "$gate/done"
  fi
  tar -C "$WORK/$name" -cf - fp16 | split -b 15m - "$OUT/model-$name.tar.part-"  # two 15 MB parts each
done
tar -C "$results" -cf "$OUT/results.tar" .
