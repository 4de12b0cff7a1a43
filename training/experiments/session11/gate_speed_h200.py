"""The ship gate's H200 throughput measure with 3 and with 10 rounds (session 11; gate_speed_h200.txt).

RAGPRUNE_DATA=<DL19 folder> python training/experiments/session11/gate_speed_h200.py CANDIDATE
"""

import sys

import numpy as np
from timing_setup import dl19_pairs

from ragprune.models.registry import load_model
from ragprune.weight_pruning.measure import inference_copy, prepare_pairs_once, throughput

queries, pairs = dl19_pairs()
models, prepared = {}, {}
for name, path in (("default", None), ("cand", sys.argv[1])):
    model, tokenizer = load_model(path)
    prepared[name] = prepare_pairs_once(tokenizer, model.config.max_length, queries, pairs)
    models[name] = inference_copy(model, "cuda")
    lengths = prepared[name].shard.rows.lengths
    print(name, "rows", len(lengths), "mean tokens", float(np.mean(lengths)), flush=True)
for rows in (256, 1024):
    for rounds in (3, 10):
        r = throughput(models, prepared, "cuda", repeats=rounds, batch_size=rows)
        median = {k: round(v["median"]) for k, v in r.items()}
        best = {k: round(v["max"]) for k, v in r.items()}
        print(
            rows,
            rounds,
            median,
            best,
            "ratio median",
            round(r["cand"]["median"] / r["default"]["median"], 3),
            "ratio max",
            round(r["cand"]["max"] / r["default"]["max"], 3),
            flush=True,
        )
