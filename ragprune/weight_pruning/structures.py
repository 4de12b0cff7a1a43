"""Which weights make up each prunable structure of a BERT-family encoder, and per-structure sums.

Structures (in layer ``l``, ``d`` = head size):

* **head** ``h``: rows ``h*d:(h+1)*d`` of the query, key and value weights and biases, and the same columns
  of the attention output projection (Michel et al. 2019; what ``prune_heads`` removes);
* **neuron** ``n`` (FFN / intermediate): row ``n`` of the intermediate weight and its bias, column ``n`` of
  the FFN output weight;
* **layer**: the weights and biases of the layer's six linear maps (LayerNorms go with the layer but are
  not scored).

:func:`structure_sums` reduces any per-parameter tensor (same shape as the parameter, e.g. squared
gradients times weights) to one value per structure; importances are built from such sums
(``ragprune.weight_pruning.importance``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ragprune.models.structure import encoder_layers

KINDS = ("heads", "neurons", "layers")
"""Structure kinds; the command line calls neurons ``ffn``."""

LINEAR_PATHS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
"""The linear maps of a BERT layer, relative to the layer."""


def layer_prefixes(model: nn.Module) -> list[str]:
    """The parameter-name prefix of each encoder layer (``"encoder.encoder.layer.3."``) in ``model``.

    ``model`` is a ``RerankPruneModel`` (layers under ``model.encoder``) or a bare BERT-family encoder.
    ``ValueError`` for another layout (from :func:`ragprune.models.structure.encoder_layers`)."""
    encoder = getattr(model, "encoder", model)
    if not hasattr(encoder, "encoder"):
        encoder = model
    layers = encoder_layers(encoder)
    names = {id(module): name for name, module in model.named_modules()}
    return [names[id(layer)] + "." for layer in layers]


def prunable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Every linear map of the encoder layers by module name (what unstructured and N:M masks prune;
    embeddings, LayerNorms and heads are left dense, as in Wanda and SparseGPT)."""
    modules = dict(model.named_modules())
    out = {}
    for prefix in layer_prefixes(model):
        for path in LINEAR_PATHS:
            name = prefix + path
            module = modules[name]
            if not isinstance(module, nn.Linear):
                raise ValueError(f"{name} is {type(module).__name__}, not nn.Linear")
            out[name] = module
    return out


def layer_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every parameter of the encoder layers by full name (what the calibration statistics cover)."""
    prefixes = tuple(layer_prefixes(model))
    return {name: p for name, p in model.named_parameters() if name.startswith(prefixes)}


@dataclass
class StructureValues:
    """One value per structure: ``heads[l]`` ``[H_l]``, ``neurons[l]`` ``[N_l]``, ``layers`` ``[L]``."""

    heads: list[torch.Tensor]
    neurons: list[torch.Tensor]
    layers: torch.Tensor

    def of(self, kind: str) -> list[torch.Tensor]:
        """Per-layer tensors of ``kind`` (for ``"layers"``: one tensor ``[L]`` in a list)."""
        if kind not in KINDS:
            raise ValueError(f"unknown structure kind {kind!r}; use one of {KINDS}")
        return [self.layers] if kind == "layers" else getattr(self, kind)

    def map(self, function: Any) -> StructureValues:
        """A new instance with ``function`` applied to every tensor."""
        return StructureValues(
            [function(t) for t in self.heads], [function(t) for t in self.neurons], function(self.layers)
        )


def structure_sums(model: nn.Module, values: Mapping[str, torch.Tensor]) -> StructureValues:
    """Sum ``values`` (full parameter name -> tensor of the parameter's shape) over each structure.

    Names missing from ``values`` count as zeros. Returns float32 tensors on the CPU.
    """
    modules = dict(model.named_modules())

    def get(name: str, like: torch.Tensor) -> torch.Tensor:
        value = values.get(name)
        return torch.zeros(like.shape) if value is None else value.detach().float().cpu()

    heads, neurons, layers = [], [], []
    for prefix in layer_prefixes(model):
        attention = modules[prefix + "attention.self"]
        size = int(attention.attention_head_size)
        count = attention.query.out_features // size
        head = torch.zeros(count)
        total = torch.zeros(())
        for path in ("query", "key", "value"):
            linear = modules[f"{prefix}attention.self.{path}"]
            weight = get(f"{prefix}attention.self.{path}.weight", linear.weight)
            bias = get(f"{prefix}attention.self.{path}.bias", linear.bias)
            head += weight.view(count, size, -1).sum((1, 2)) + bias.view(count, size).sum(1)
            total += weight.sum() + bias.sum()
        out = modules[prefix + "attention.output.dense"]
        weight = get(prefix + "attention.output.dense.weight", out.weight)
        head += weight.view(weight.shape[0], count, size).sum((0, 2))
        total += weight.sum() + get(prefix + "attention.output.dense.bias", out.bias).sum()
        up, down = modules[prefix + "intermediate.dense"], modules[prefix + "output.dense"]
        up_weight = get(prefix + "intermediate.dense.weight", up.weight)
        up_bias = get(prefix + "intermediate.dense.bias", up.bias)
        down_weight = get(prefix + "output.dense.weight", down.weight)
        neurons.append(up_weight.sum(1) + up_bias + down_weight.sum(0))
        total += up_weight.sum() + up_bias.sum() + down_weight.sum()
        total += get(prefix + "output.dense.bias", down.bias).sum()
        heads.append(head)
        layers.append(total)
    return StructureValues(heads, neurons, torch.stack(layers))


def structure_sizes(model: nn.Module) -> StructureValues:
    """Number of weights (and biases) of each structure, as :func:`structure_sums` counts them."""
    return structure_sums(model, {name: torch.ones_like(p) for name, p in layer_parameters(model).items()})
