"""Stage-runner pass time under CUDA graphs (H200, session 11): the checkout's host path against
7ec9492's runner.py + collate.py, alternated over the same graphs, for the default model and a 4-layer model
(magnitude layer pruning; only its shape matters for timing). Run from a checkout of 2155dc9 (each batch
padded straight into its pinned staging buffer, tokens scattered rather than the grid gathered), which was
2-4% slower and reverted (ab_host_h200.txt):

    git show 7ec9492:ragprune/pipeline/runner.py > .carry/prof/runner_head.py
    git show 7ec9492:ragprune/pipeline/collate.py > .carry/prof/collate_head.py
    python training/experiments/session11/ab_host_h200.py .carry/prof/{runner,collate}_head.py
"""

import importlib.util
import os
import sys

import torch
from timing_setup import alternated_best, dl19_pairs, four_layers

import ragprune.weight_pruning.measure as measure
from ragprune.models.registry import load_model
from ragprune.pipeline.graphs import EncoderGraphs
from ragprune.weight_pruning.measure import inference_copy, prepare_pairs_once, score_pairs


def module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


old_runner, old_collate = module("runner_old", sys.argv[1]), module("collate_old", sys.argv[2])
old_runner.pad_block = old_collate.pad_block
runners = {"before": old_runner.Runner, "after": measure.Runner}
DEVICE = os.environ.get("AB_DEVICE", "cuda")  # AB_DEVICE=cpu AB_PAIRS=256: a smoke test of this script
queries, pairs = dl19_pairs(int(os.environ.get("AB_PAIRS", 4096)))
model, tok = load_model(None)
small = four_layers(model, tok)
prepared = prepare_pairs_once(tok, model.config.max_length, queries, pairs)
rates = {}
sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
print(torch.cuda.get_device_name() if DEVICE == "cuda" else DEVICE, flush=True)
for name, m in (("default", model), ("4 layers", small)):
    ready = inference_copy(m, DEVICE)
    graphs = EncoderGraphs(ready) if DEVICE == "cuda" else None
    for bs in (256, 1024):

        def run(ready=ready, bs=bs, graphs=graphs):
            return score_pairs(ready, prepared, DEVICE, batch_size=bs, ready=True, graphs=graphs)

        switches = {k: (lambda r=r: setattr(measure, "Runner", r)) for k, r in runners.items()}
        best, outputs = alternated_best(switches, run, rounds=8 if DEVICE == "cuda" else 1, sync=sync)
        assert (outputs["before"].scores["rank"] == outputs["after"].scores["rank"]).all()
        assert (outputs["before"].sentence_kept == outputs["after"].sentence_kept).all()
        for k in runners:
            rates[(name, bs, k)] = len(pairs) / best[k]
            print(f"{name} bs={bs} {k}: {len(pairs) / best[k]:.0f} pairs/s", flush=True)
for bs in (256, 1024):
    for k in runners:
        print(
            f"bs={bs} {k}: 4 layers / default = {rates[('4 layers', bs, k)] / rates[('default', bs, k)]:.2f}"
        )
