"""Structured pruning that really removes weights: attention heads, FFN neurons, whole layers.

The kept rows / columns are sliced into new, smaller ``nn.Linear`` maps and the model's config is updated
(``config.encoder_structure`` for per-layer widths, the backbone config's ``num_hidden_layers`` for
layers), so the pruned model saves with ``save_pretrained`` and loads with ``from_pretrained`` /
``RerankPruner.load`` anywhere, with real speed-ups and no sparse kernels (LLM-Pruner, Ma et al. 2023;
FLAP, An et al. 2024; Minitron, Muralidharan et al. 2024; layer removal as in FinerCut, Zhang et al. 2024).

Heads and neurons are removed uniformly: every layer keeps the same number, ``(1 - sparsity) * n`` rounded
half up (at least one; neurons to a multiple of ``neuron_multiple`` for GPU-friendly widths). Layers: the
``(1 - sparsity) * L`` highest-scored layers stay, the same rounding (MiniLM's 6 layers: 5, 3, 2 at 25, 50,
70%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ragprune.models.config import EncoderStructure, LayerShape
from ragprune.models.encoder import RerankPruneModel
from ragprune.models.structure import encoder_layers, structure_of
from ragprune.weight_pruning.structures import StructureValues

STRUCTURES = {"heads": "heads", "ffn": "neurons", "layers": "layers"}
"""Command-line name -> structure kind."""


def kept_count(total: int, sparsity: float, multiple: int = 1) -> int:
    """How many of ``total`` structures are kept at ``sparsity``: ``(1 - s) * total`` rounded half up, to a
    multiple of ``multiple`` when ``total`` is one; at least ``multiple`` (or 1), at most ``total``.
    ``ValueError`` for a sparsity outside ``[0, 1)``."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity={sparsity} must lie in [0, 1)")
    keep = (1.0 - sparsity) * total
    if multiple > 1 and total % multiple == 0:
        return int(min(total, max(multiple, math.floor(keep / multiple + 0.5) * multiple)))
    return int(min(total, max(1, math.floor(keep + 0.5))))


def top_indices(scores: torch.Tensor, keep: int) -> list[int]:
    """The indices of the ``keep`` highest scores, in increasing index order (ties: lower index wins)."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return sorted(order[:keep])


def select(scores: StructureValues, kind: str, sparsity: float, neuron_multiple: int = 8) -> list:
    """Indices to keep: per layer for ``heads`` / ``neurons`` (a list per layer), the layer indices for
    ``layers``."""
    if kind == "layers":
        return top_indices(scores.layers, kept_count(len(scores.layers), sparsity))
    values = scores.of(kind)
    multiple = neuron_multiple if kind == "neurons" else 1
    return [top_indices(v, kept_count(len(v), sparsity, multiple)) for v in values]


def prune_heads(model: RerankPruneModel, keep: Sequence[Sequence[int]]) -> None:
    """Keep only the heads ``keep[l]`` of each layer ``l`` (in place). ``ValueError`` for an empty list or a
    head index out of range."""
    layers = encoder_layers(model.encoder)
    _check_layers(keep, len(layers))
    layer: Any  # a BertLayer: nn.Module.__getattr__ types its submodules as Tensor | Module
    for index, (layer, heads) in enumerate(zip(layers, keep)):
        attention = layer.attention.self
        size = attention.attention_head_size
        count = attention.query.out_features // size
        _check_indices(heads, count, f"layer {index} heads")
        rows = torch.tensor([h * size + j for h in heads for j in range(size)], dtype=torch.long)
        for name in ("query", "key", "value"):
            setattr(attention, name, _slice_linear(getattr(attention, name), rows=rows))
        layer.attention.output.dense = _slice_linear(layer.attention.output.dense, columns=rows)
        attention.num_attention_heads = len(heads)
        attention.all_head_size = len(heads) * size
    _record_structure(model)


def prune_neurons(model: RerankPruneModel, keep: Sequence[Sequence[int]]) -> None:
    """Keep only the FFN neurons ``keep[l]`` of each layer ``l`` (in place)."""
    layers = encoder_layers(model.encoder)
    _check_layers(keep, len(layers))
    layer: Any
    for index, (layer, neurons) in enumerate(zip(layers, keep)):
        _check_indices(neurons, layer.intermediate.dense.out_features, f"layer {index} FFN neurons")
        rows = torch.tensor(list(neurons), dtype=torch.long)
        layer.intermediate.dense = _slice_linear(layer.intermediate.dense, rows=rows)
        layer.output.dense = _slice_linear(layer.output.dense, columns=rows)
    _record_structure(model)


def prune_layers(model: RerankPruneModel, keep: Sequence[int]) -> None:
    """Keep only the layers ``keep`` (in their order; in place): the backbone config's ``num_hidden_layers``
    becomes ``len(keep)``, so a saved folder rebuilds the shorter encoder and its renumbered weights load."""
    layers = encoder_layers(model.encoder)
    _check_indices(keep, len(layers), "layers")
    kept = nn.ModuleList([layers[i] for i in sorted(keep)])
    encoder: Any = model.encoder
    encoder.encoder.layer = kept
    for config in {
        id(c): c for c in (model.backbone_config, getattr(model.encoder, "config", None)) if c
    }.values():
        config.num_hidden_layers = len(kept)
    for new_index, layer in enumerate(kept):  # attention modules that keep their index for caches
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                setattr(module, "layer_idx", new_index)  # noqa: B010 - nn.Module attribute typing
    model.config.encoder_structure = None
    _record_structure(model)


def check_kept_layers(kept: Sequence[int], layers: int) -> None:
    """``ValueError`` unless ``kept`` names at least one layer, each once, all within ``0..layers - 1``."""
    if not kept or len(set(kept)) != len(kept) or not all(0 <= i < layers for i in kept):
        raise ValueError(f"kept layers {list(kept)} must be distinct layers within 0..{layers - 1}")


def prune_structures(model: RerankPruneModel, scores: StructureValues, kind: str, sparsity: float) -> list:
    """Select by ``scores`` and remove structures of ``kind`` (``heads``, ``neurons``, ``layers``) in place;
    returns the kept indices."""
    keep = select(scores, kind, sparsity)
    if kind == "heads":
        prune_heads(model, keep)
    elif kind == "neurons":
        prune_neurons(model, keep)
    elif kind == "layers":
        prune_layers(model, keep)
    else:
        raise ValueError(f"unknown structure kind {kind!r}; use heads, neurons or layers")
    return keep


def _slice_linear(
    linear: nn.Linear, rows: torch.Tensor | None = None, columns: torch.Tensor | None = None
) -> nn.Linear:
    weight = linear.weight.detach()
    bias = linear.bias.detach() if linear.bias is not None else None
    if rows is not None:
        weight = weight[rows.to(weight.device)]
        bias = bias[rows.to(weight.device)] if bias is not None else None
    if columns is not None:
        weight = weight[:, columns.to(weight.device)]
    new = nn.Linear(
        weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype
    )
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def _record_structure(model: RerankPruneModel) -> None:
    """``config.encoder_structure`` from the layers' widths (``None`` when they match the backbone's)."""
    structure = structure_of(model.encoder)
    backbone = model.backbone_config
    full = EncoderStructure(
        tuple(LayerShape(backbone.num_attention_heads, backbone.intermediate_size) for _ in structure.layers)
    )
    model.config.encoder_structure = None if structure == full else structure


def _check_layers(keep: Sequence, count: int) -> None:
    if len(keep) != count:
        raise ValueError(f"kept indices for {len(keep)} layers, but the encoder has {count}")


def _check_indices(indices: Sequence[int], total: int, what: str) -> None:
    if not indices:
        raise ValueError(f"{what}: keep at least one (remove the whole layer instead)")
    if len(set(indices)) != len(indices) or not all(0 <= i < total for i in indices):
        raise ValueError(f"{what}: indices {list(indices)} must be distinct and within 0..{total - 1}")
