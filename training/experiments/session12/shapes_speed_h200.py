"""Which pruned shapes reach issue 12's speed gate (>= 1.3x the default on the H200 and the CPU)? Times the
default against one-shot magnitude-pruned copies of it (only their shapes matter here, not their quality):
4 layers (the session-12 k5 shape), FFN 50% and 60% in all 6 layers, and 5 layers with FFN 40, 50 or 60%
(the second run, ``--five-only``, times only the 5-layer shapes beside the default and l4), with the
ship gate's own measure (``weight_pruning.measure.throughput``: encoder + heads + sentence scoring on
pre-tokenized DL19 pairs, the models in alternation, median of 10 rounds). Output: shapes_speed_h200.txt.

RAGPRUNE_DATA=<folder with trec-dl/dl19> python training/experiments/session12/shapes_speed_h200.py
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "session11"))
from timing_setup import dl19_pairs  # noqa: E402

from ragprune.models.registry import load_model  # noqa: E402
from ragprune.weight_pruning.api import compress  # noqa: E402
from ragprune.weight_pruning.measure import (  # noqa: E402
    inference_copy,
    parameter_counts,
    prepare_pairs_once,
    throughput,
)

VOCABULARY = 20_000  # the `fast` candidates' trimmed vocabulary: parameters counted as if trimmed

dense, tokenizer = load_model(None)
shapes = {"default": dense}
shapes["l4"] = compress(
    dense, method=None, structure="layers", sparsity=0.3334, keep_layers=[0, 1, 2, 5]
).model
for sparsity in (0.5, 0.6):
    shapes[f"ffn{round(sparsity * 100)}"] = compress(
        dense, method="magnitude", structure="ffn", sparsity=sparsity
    ).model
five = compress(dense, method=None, structure="layers", sparsity=1 / 6, keep_layers=[0, 1, 2, 3, 5]).model
for sparsity in (0.4, 0.5, 0.6):
    shapes[f"l5-ffn{round(sparsity * 100)}"] = compress(
        five, method="magnitude", structure="ffn", sparsity=sparsity
    ).model
if len(sys.argv) > 1 and sys.argv[1] == "--five-only":  # the second run: the 5-layer shapes against l4
    shapes = {k: v for k, v in shapes.items() if k in ("default", "l4") or k.startswith("l5")}

hidden = dense.backbone_config.hidden_size
full = parameter_counts(dense)["encoder"]
print(f"device {torch.cuda.get_device_name()}; CPU threads {torch.get_num_threads()}")
for name, model in shapes.items():
    count = parameter_counts(model)["encoder"]
    trimmed = count - (model.backbone_config.vocab_size - VOCABULARY) * hidden if name != "default" else count
    widths = [layer.intermediate.dense.out_features for layer in model.encoder.encoder.layer]
    print(
        f"{name}: FFN widths {widths}, encoder parameters {count:,} ({trimmed / full:.1%} with a "
        f"{VOCABULARY:,}-token vocabulary)"
    )

queries, pairs = dl19_pairs()
prepared = prepare_pairs_once(tokenizer, dense.config.max_length, queries, pairs)
for device, rows, count in (("cuda", 256, 4096), ("cuda", 1024, 4096), ("cpu", 32, 96)):
    ready = {name: inference_copy(model, device) for name, model in shapes.items()}
    timed = throughput(ready, prepared.subset(count), device, repeats=10, batch_size=rows)
    base = timed["default"]["median"]
    cells = ", ".join(f"{name} {t['median']:,.0f} (x{t['median'] / base:.2f})" for name, t in timed.items())
    print(f"{device}, {count} pairs, {rows}-row batches, median pairs/s of 10: {cells}", flush=True)
