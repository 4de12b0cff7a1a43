"""Per-layer widths of a BERT-family encoder: read them, and resize a freshly built encoder to them.

Structured weight pruning (``ragprune.weight_pruning``) leaves layers with fewer attention heads and FFN
neurons than the backbone config says; the config records them as an ``EncoderStructure``, and
:func:`apply_structure` rebuilds the smaller linear layers before the saved weights load. Supported: encoders
whose layers follow BERT's module layout (BERT, MiniLM, RoBERTa, XLM-R, ELECTRA).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ragprune.models.config import EncoderStructure, LayerShape


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The transformer layers of a BERT-family encoder; ``ValueError`` for another layout."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not all(_is_bert_layer(layer) for layer in layers):
        raise ValueError(
            f"{type(encoder).__name__} does not have BERT's layer layout (encoder.layer[i].attention.self, "
            ".intermediate, .output); per-layer widths are supported for BERT-family encoders only"
        )
    return layers


def structure_of(encoder: nn.Module) -> EncoderStructure:
    """The heads and FFN neurons each layer of ``encoder`` has now."""
    shapes = []
    layer: Any  # a BertLayer: nn.Module.__getattr__ types its submodules as Tensor | Module
    for layer in encoder_layers(encoder):
        attention = layer.attention.self
        shapes.append(
            LayerShape(
                attention_heads=attention.query.out_features // attention.attention_head_size,
                intermediate_size=layer.intermediate.dense.out_features,
            )
        )
    return EncoderStructure(tuple(shapes))


def apply_structure(encoder: nn.Module, structure: EncoderStructure) -> None:
    """Resize ``encoder``'s layers in place to ``structure`` (new, uninitialised linear layers where a width
    changes; load the weights afterwards). ``ValueError`` if the layer counts differ."""
    layers = encoder_layers(encoder)
    if len(layers) != len(structure.layers):
        raise ValueError(
            f"encoder_structure describes {len(structure.layers)} layers but the backbone has {len(layers)}; "
            "save the backbone config with the kept number of layers (num_hidden_layers)"
        )
    layer: Any
    for layer, shape in zip(layers, structure.layers):
        attention = layer.attention.self
        width = shape.attention_heads * attention.attention_head_size
        if attention.query.out_features != width:
            for name in ("query", "key", "value"):
                old = getattr(attention, name)
                setattr(attention, name, nn.Linear(old.in_features, width))
            old = layer.attention.output.dense
            layer.attention.output.dense = nn.Linear(width, old.out_features)
            attention.num_attention_heads = shape.attention_heads
            attention.all_head_size = width
        if layer.intermediate.dense.out_features != shape.intermediate_size:
            old = layer.intermediate.dense
            layer.intermediate.dense = nn.Linear(old.in_features, shape.intermediate_size)
            old = layer.output.dense
            layer.output.dense = nn.Linear(shape.intermediate_size, old.out_features)


def _is_bert_layer(layer: nn.Module) -> bool:
    attention = getattr(layer, "attention", None)
    return (
        hasattr(getattr(attention, "self", None), "attention_head_size")
        and hasattr(getattr(attention, "output", None), "dense")
        and hasattr(getattr(layer, "intermediate", None), "dense")
        and hasattr(getattr(layer, "output", None), "dense")
    )
