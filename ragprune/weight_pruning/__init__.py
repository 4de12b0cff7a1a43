"""Weight pruning of the shared encoder: importance scores, structured removal, masks, recovery.

Modules, one job each:

* ``calibration``: domain / general calibration groups from training splits (sources, recipes, files);
* ``sampling``: GAPrune's k-means sampling of a pool with the model's own query embeddings;
* ``loss``: the model's joint loss (rank + token, from ``ragprune.training.losses``) and its batches;
* ``statistics``: one pass for per-weight Fisher, mean gradients (per set) and activation norms;
* ``structures``: which weights form each head, FFN neuron and layer; per-structure sums;
* ``importance``: magnitude, Wanda, Fisher and GAPrune's DAI, per weight and per structure;
* ``structured``: removal of heads / FFN neurons / layers with real slicing (``encoder_structure``);
* ``unstructured``: unstructured and N:M (2:4) masks, semi-structured GPU tensors;
* ``recovery``: short distillation from the dense model;
* ``measure``: parameter counts, fp16 size, scoring and timing models on pairs tokenized once;
* ``api``: :func:`compress`, :func:`build_calibration`, :func:`measure`.

Names below load on first use, so ``import ragprune.weight_pruning`` stays cheap.
"""

from __future__ import annotations

from ragprune.lazy import lazy_exports

_LAZY = {
    "compress": "ragprune.weight_pruning.api",
    "build_calibration": "ragprune.weight_pruning.api",
    "measure": "ragprune.weight_pruning.api",
    "Calibration": "ragprune.weight_pruning.api",
    "CompressionResult": "ragprune.weight_pruning.api",
    "CalibrationSet": "ragprune.weight_pruning.calibration",
    "CalibrationGroup": "ragprune.weight_pruning.calibration",
    "CalibrationPassage": "ragprune.weight_pruning.calibration",
    "DAIConfig": "ragprune.weight_pruning.importance",
    "RecoveryConfig": "ragprune.weight_pruning.recovery",
    "CalibrationStatistics": "ragprune.weight_pruning.statistics",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_exports(__name__, _LAZY)
