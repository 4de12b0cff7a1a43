"""Stage-runner pass time under CUDA graphs (H200, session 10): this checkout's collector against an older
runner.py's, alternated over the same graphs (eval/results/bench_graphs_h200.md).

    git show 549e3ea:ragprune/pipeline/runner.py > /tmp/runner_old.py
    python training/experiments/session10/ab_collector_h200.py /tmp/runner_old.py
"""

import importlib.util
import sys
import time

import torch

import ragprune.pipeline.runner as runner
from ragprune.data import load_trec_dl
from ragprune.models.registry import load_model
from ragprune.pipeline.graphs import EncoderGraphs
from ragprune.weight_pruning.api import compress
from ragprune.weight_pruning.measure import inference_copy, prepare_pairs_once, score_pairs

spec = importlib.util.spec_from_file_location("runner_old", sys.argv[1])
old = importlib.util.module_from_spec(spec)
sys.modules["runner_old"] = old
spec.loader.exec_module(old)
collectors = {"HEAD": old._Collector, "new": runner._Collector}
dl = load_trec_dl("dl19")
qids = sorted(dl.run)
queries = [dl.topics[q] for q in qids]
pairs = [(i, dl.passages[p], "") for i, q in enumerate(qids) for p in dl.run[q]][:4096]
model, tok = load_model(None)
small = compress(model, tok, method="magnitude", structure="layers", sparsity=0.3334).model
prepared = prepare_pairs_once(tok, model.config.max_length, queries, pairs)
rates = {}
for name, m in (("default", model), ("4 layers", small)):
    ready = inference_copy(m, "cuda")
    graphs = EncoderGraphs(ready)
    for bs in (256, 1024):

        def run(ready=ready, bs=bs, graphs=graphs):
            return score_pairs(ready, prepared, "cuda", batch_size=bs, ready=True, graphs=graphs)

        for _ in range(3):
            run()
        best = {k: 1e9 for k in collectors}
        for _ in range(6):
            for k, c in collectors.items():
                runner._Collector = c
                torch.cuda.synchronize()
                t = time.perf_counter()
                run()
                torch.cuda.synchronize()
                best[k] = min(best[k], time.perf_counter() - t)
        for k in collectors:
            rates[(name, bs, k)] = len(pairs) / best[k]
            print(f"{name} bs={bs} {k}: {len(pairs) / best[k]:.0f} pairs/s", flush=True)
for bs in (256, 1024):
    for k in collectors:
        print(
            f"bs={bs} {k}: 4 layers / default = {rates[('4 layers', bs, k)] / rates[('default', bs, k)]:.2f}"
        )
