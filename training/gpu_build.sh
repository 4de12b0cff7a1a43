#!/usr/bin/env bash
# On the GPU machine: join the chunks of training/pack_teachers.sh (copied to ~/chunks by earlier calls),
# check them, and run build_data.py (with the carried synthetic queries, if any) + build_spliced.py there
# (MPNet and MiniLM encode on the GPU), then splade_teacher.py (SPLADE-tiny scores on 16 CPU threads; the
# teacher ensemble re-chosen on DL21).
# The data folder stays in ~/train for the training calls that follow on the same warm machine; its
# stats, logs and a copy of the data (split under the 16 MiB per-file limit) come back in $OUT.
# Steps: STEP=synthetic (join + finish the synthetic queries), STEP=build (the rest), unset = both.
# Usage (device call, carrying the last chunk — part-04 before synthetic queries; `ls .carry/chunks` says
# which, the synthetic file can add one and SYNTHETIC_LM=1 two more — and .carry/chunks/SHA256SUMS):
#   bash training/gpu_build.sh
set -euo pipefail
OUT="${OUT:-runs/gpu-build}"
mkdir -p "$OUT" ~/chunks ~/tb
if [ ! -f ~/tb/.joined ]; then  # a second call on the same warm machine (STEP=build) skips the join
  cp .carry/chunks/part-* ~/chunks/
  (cd ~/chunks && sha256sum -c --ignore-missing "$OLDPWD/.carry/chunks/SHA256SUMS")
  cat ~/chunks/part-* > ~/teachers.tar
  (cd ~ && grep teachers.tar "$OLDPWD/.carry/chunks/SHA256SUMS" | sha256sum -c)
  tar -xf ~/teachers.tar -C ~/tb && touch ~/tb/.joined
fi
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site ~/tb/whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 RAGPRUNE_DATA=~/tb/data RAGPRUNE_MINILM=~/tb/minilm
mkdir -p .cache/models && ln -sfn ~/tb/mpnet .cache/models/all-mpnet-base-v2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# Synthetic queries (pack_teachers.sh carries them when .cache/synthetic/queries.jsonl.gz exists): with the
# LM carried too, finish the resumable generation on the GPU and clean again; then add them as a source.
SYNTHETIC=()
if [ -d ~/tb/synthetic ]; then
  S=~/tb/synthetic
  if [ -f "$S/SmolLM2-135M-Instruct.Q4_1.gguf" ] && [ "${STEP:-all}" != build ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$S"/whl/*.whl
    python3 training/synthetic_queries.py generate --device cuda --batch-size "${SYNTHETIC_BATCH:-64}" \
      --gguf "$S/SmolLM2-135M-Instruct.Q4_1.gguf" --passages "$S/passages.jsonl.gz" --out "$S/raw.jsonl.gz" 2>&1 \
      | grep -v "GGUF\|Loading" | tee "$OUT/synthetic_generate.log"
    python3 training/synthetic_queries.py clean --passages "$S/passages.jsonl.gz" --out "$S/raw.jsonl.gz" \
      --clean-out "$S/queries.jsonl.gz" | tee "$OUT/synthetic_clean.log"
    cp "$S/raw.jsonl.gz" "$S/queries.jsonl.gz" "$S/clean_stats.json" "$OUT/"
  fi
  SYNTHETIC=(--synthetic "$S/queries.jsonl.gz")
fi
# STEP=synthetic stops here (generation can take most of a call's 10 minutes; it resumes where it stopped),
# and a following call with STEP=build skips both the join and the finished generation.
[ "${STEP:-all}" = synthetic ] && exit 0
python3 training/build_data.py --out ~/train --cache ~/emb --threads 16 ${SYNTHETIC[@]+"${SYNTHETIC[@]}"} 2>&1 \
  | grep -v "Batches:" | tee "$OUT/build.log"
python3 training/build_spliced.py --data ~/train | tee "$OUT/spliced.log"
python3 training/splade_teacher.py --data ~/train --out ~/train-splade --model ~/tb/splade --threads 16 \
  2>&1 | tee "$OUT/splade.log"
cp ~/train/stats.json ~/train/spliced_stats.json "$OUT/" && cp ~/train-splade/teacher_choice.json "$OUT/"
rm -rf ~/train && mv ~/train-splade ~/train
tar -C ~ -cf ~/train.tar train
split -b 15M -d ~/train.tar "$OUT/train.tar.part-"
