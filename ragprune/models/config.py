"""The ragprune part of a model folder's configuration (``ragprune_config.json``).

The backbone keeps its own Hugging Face ``config.json`` beside it, so any encoder that
``transformers.AutoModel`` can build works as a backbone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONFIG_NAME = "ragprune_config.json"
SENTENCE_REDUCTIONS = ("mean", "max", "vote")


@dataclass
class RerankPruneConfig:
    """Heads and inference defaults of a rerank + prune model.

    ``rank_pooler_activation`` adds a dense layer + activation before the rank classifier
    (the Provence / DeBERTa ``ContextPooler`` layout); ``None`` reads ``[CLS]`` with one linear layer.
    ``heads`` lists the heads present, so later heads (listwise, full ranking) can be added to the
    same encoder without breaking older folders.
    """

    max_length: int = 256
    threshold: float = 0.1
    sentence_reduce: str = "mean"
    rank_pooler_activation: str | None = None
    heads: list[str] = field(default_factory=lambda: ["rank", "token"])
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sentence_reduce not in SENTENCE_REDUCTIONS:
            raise ValueError(
                f"sentence_reduce={self.sentence_reduce!r} is not supported; use one of {SENTENCE_REDUCTIONS}"
            )
        if self.max_length < 16:
            raise ValueError(f"max_length={self.max_length} is too small; use at least 16 tokens")

    def save(self, folder: Path) -> None:
        (folder / CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: Path) -> RerankPruneConfig:
        path = folder / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: {folder} is not a ragprune model folder "
                "(save one with RerankPruneModel.save_pretrained, or load a Provence checkpoint "
                "with load_provence)"
            )
        return cls(**json.loads(path.read_text()))
