"""Pass time under CUDA graphs for three padding steps (rows padded to a multiple of 8, 16 or 32 tokens),
H200, session 11 (ab_width_step_h200.txt). Rows are batched only with rows of the same padded width, so a
finer step gives more, smaller batches (4,096 DL19 pairs in 256-row batches: 35 batches at step 8, 26 at 16,
21 at 32; 28 / 16 / 9 in 1,024-row batches) and a coarser one more padding (+3.7% / +8% / +16% tokens). The
profile (profile_host_h200.txt) shows both models host-bound at ~1.6 ms per batch. Best of 8 alternated
passes per step; the default model and a 4-layer one (magnitude layer pruning; only its shape matters).

    RAGPRUNE_DATA=<DL19 folder> python training/experiments/session11/ab_width_step_h200.py
"""

import numpy as np
import torch
from timing_setup import alternated_best, dl19_pairs, four_layers

import ragprune.pipeline.runner as runner
from ragprune.models.registry import load_model
from ragprune.pipeline.graphs import EncoderGraphs
from ragprune.weight_pruning.measure import inference_copy, prepare_pairs_once, score_pairs

STEPS = (8, 16, 32)
queries, pairs = dl19_pairs()
model, tokenizer = load_model(None)
small = four_layers(model, tokenizer)
prepared = prepare_pairs_once(tokenizer, model.config.max_length, queries, pairs)
print(torch.cuda.get_device_name(), flush=True)
rates = {}
for name, m in (("default", model), ("4 layers", small)):
    ready = inference_copy(m, "cuda")
    graphs = EncoderGraphs(ready)
    for rows in (256, 1024):

        def run(ready=ready, graphs=graphs, rows=rows):
            return score_pairs(ready, prepared, "cuda", batch_size=rows, ready=True, graphs=graphs)

        # each new Runner on CUDA reads runner.CUDA_WIDTH_STEP
        switches = {s: (lambda s=s: setattr(runner, "CUDA_WIDTH_STEP", s)) for s in STEPS}
        best, outputs = alternated_best(switches, run, sync=torch.cuda.synchronize)
        drift = max(float(np.abs(outputs[s].scores["rank"] - outputs[8].scores["rank"]).max()) for s in STEPS)
        for step in STEPS:
            rates[(name, rows, step)] = len(pairs) / best[step]
        line = ", ".join(f"step {s}: {len(pairs) / best[s]:.0f}" for s in STEPS)
        print(f"{name}, {rows}-row batches: {line} pairs/s (rank logits move <= {drift:.4f})", flush=True)
for rows in (256, 1024):
    ratio = {s: rates[("4 layers", rows, s)] / rates[("default", rows, s)] for s in STEPS}
    line = ", ".join(f"step {s}: {ratio[s]:.2f}" for s in STEPS)
    print(f"{rows}-row batches, 4 layers / default: {line}")
