"""Resolve what the user names as a model into a loaded model and tokenizer, offline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from ragprune.models.config import CONFIG_NAME, RerankPruneConfig
from ragprune.models.encoder import WEIGHTS_NAME, RerankPruneModel, load_tokenizer
from ragprune.models.provence import is_provence_folder, load_provence

DEFAULT_MODEL_DIR = Path(__file__).parent / "default"


def resolve_model_path(name: str | Path | None) -> Path:
    """``None`` or ``"default"`` is the model shipped in the package; anything else must be a folder."""
    if name is None or str(name) == "default":
        if not (DEFAULT_MODEL_DIR / CONFIG_NAME).is_file():
            raise FileNotFoundError(
                f"the default model is missing from {DEFAULT_MODEL_DIR}; reinstall ragprune "
                "or pass --model PATH to a model folder"
            )
        return DEFAULT_MODEL_DIR
    path = Path(name).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"model {str(name)!r} is not a folder; ragprune loads models offline from a local folder "
            "(a ragprune model or a Provence checkpoint), or use 'default' for the shipped model"
        )
    return path


def model_digest(folder: Path) -> str:
    """sha256 over a model folder's weights and the inference part of its ragprune config (provenance left
    out): a key for results cached per model."""
    digest = hashlib.sha256((folder / WEIGHTS_NAME).read_bytes())
    inference = RerankPruneConfig.load(folder).to_dict()
    inference.pop("provenance")
    digest.update(json.dumps(inference, sort_keys=True).encode())
    return digest.hexdigest()


def load_model(name: str | Path | None = None) -> tuple[RerankPruneModel, PreTrainedTokenizerBase]:
    """Model and tokenizer from a ragprune folder or a Provence checkpoint folder."""
    path = resolve_model_path(name)
    if (path / CONFIG_NAME).is_file():
        model = RerankPruneModel.from_pretrained(path)
    elif is_provence_folder(path):
        model = load_provence(path)
    else:
        raise ValueError(
            f"{path} holds neither {CONFIG_NAME} (a ragprune model) nor a Provence config.json; "
            "train one with training/train.py or point to a Provence checkpoint"
        )
    return model, load_tokenizer(path)
