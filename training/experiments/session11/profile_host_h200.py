"""Where a stage-runner pass spends its host time under CUDA graphs (H200, session 11; profile_host_h200.txt):
the default model and a 4-layer one (magnitude layer pruning; only its shape matters) on 4,096 DL19 pairs
in 256-row batches, after warm-up. Per model: the wall time of a pass, the GPU time the torch profiler
records, then the host functions that take the most time (cProfile over 3 passes, by own time).

    RAGPRUNE_DATA=<DL19 folder> python training/experiments/session11/profile_host_h200.py
"""

import cProfile
import io
import pstats
import time

import torch
from timing_setup import dl19_pairs, four_layers
from torch.profiler import ProfilerActivity, profile

from ragprune.models.registry import load_model
from ragprune.pipeline.graphs import EncoderGraphs
from ragprune.weight_pruning.measure import inference_copy, prepare_pairs_once, score_pairs

queries, pairs = dl19_pairs()
model, tokenizer = load_model(None)
small = four_layers(model, tokenizer)
prepared = prepare_pairs_once(tokenizer, model.config.max_length, queries, pairs)
print(torch.cuda.get_device_name(), flush=True)
for name, m in (("default", model), ("4 layers", small)):
    ready = inference_copy(m, "cuda")
    graphs = EncoderGraphs(ready)

    def run(ready=ready, graphs=graphs):
        return score_pairs(ready, prepared, "cuda", batch_size=256, ready=True, graphs=graphs)

    for _ in range(3):
        run()
    torch.cuda.synchronize()
    walls = []
    for _ in range(5):
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        walls.append(time.perf_counter() - start)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    events = prof.key_averages()
    gpu_ms = sum(getattr(e, "self_device_time_total", 0) for e in events) / 1e3
    print(f"== {name}: pass {min(walls) * 1e3:.1f} ms (best of 5), GPU {gpu_ms:.1f} ms (profiled pass)")
    print(events.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=50))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    print(text.getvalue()[-6000:], flush=True)
