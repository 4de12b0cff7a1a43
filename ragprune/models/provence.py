"""Run released Provence checkpoints through ragprune.

A Provence folder (``DebertaV2ForCompressionAndRanking``) holds a DeBERTa-v2 encoder under ``deberta.``,
a ``pooler.dense`` + activation before a one-logit ``classifier``, and a two-class ``token_classifier``.
The two-class token head maps exactly onto ragprune's one-logit ``token`` head: ``softmax([a, b])[1]`` equals
``sigmoid(b - a)``, so the keep logit is the difference of the two rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoConfig

from ragprune.models.config import HeadSpec, RerankPruneConfig
from ragprune.models.encoder import RerankPruneModel

PROVENCE_ARCHITECTURE = "DebertaV2ForCompressionAndRanking"
PROVENCE_THRESHOLD = 0.1  # the threshold Provence's authors recommend


def is_provence_folder(folder: Path) -> bool:
    config_path = folder / "config.json"
    if not config_path.is_file():
        return False
    return PROVENCE_ARCHITECTURE in json.loads(config_path.read_text()).get("architectures", [])


def load_provence(folder: str | Path, max_length: int = 512) -> RerankPruneModel:
    """A :class:`RerankPruneModel` holding the weights of a Provence checkpoint folder."""
    folder = Path(folder)
    if not is_provence_folder(folder):
        raise ValueError(
            f"{folder} is not a Provence checkpoint (config.json must list {PROVENCE_ARCHITECTURE})"
        )
    backbone_config = AutoConfig.from_pretrained(str(folder))
    activation = getattr(backbone_config, "pooler_hidden_act", "gelu")
    heads = {"rank": HeadSpec("rank", {"pooler_activation": activation}), "token": HeadSpec("token")}
    config = RerankPruneConfig(max_length=max_length, threshold=PROVENCE_THRESHOLD, heads=heads)
    model = RerankPruneModel(backbone_config, config)
    model.load_state_dict(_convert_state(_read_weights(folder)))
    return model.eval()


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    safetensors_path = folder / "model.safetensors"
    if safetensors_path.is_file():
        return load_file(str(safetensors_path))
    bin_path = folder / "pytorch_model.bin"
    if bin_path.is_file():
        return torch.load(bin_path, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin in {folder}")


def _convert_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        value = value.float()
        if key.startswith("deberta."):
            converted["encoder." + key.removeprefix("deberta.")] = value
        elif key.startswith("pooler.dense."):
            converted["heads.rank.pooler." + key.removeprefix("pooler.dense.")] = value
        elif key.startswith("classifier."):
            converted["heads.rank.out." + key.removeprefix("classifier.")] = value
        elif key == "token_classifier.weight":
            converted["heads.token.out.weight"] = (value[1] - value[0]).unsqueeze(0)
        elif key == "token_classifier.bias":
            converted["heads.token.out.bias"] = (value[1] - value[0]).reshape(1)
    return converted
