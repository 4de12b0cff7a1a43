"""Models: the shared encoder with rank and token heads, its config, and checkpoint loaders."""

from ragprune.models.config import RerankPruneConfig
from ragprune.models.encoder import RerankPruneModel, load_tokenizer
from ragprune.models.provence import load_provence
from ragprune.models.registry import load_model, resolve_model_path

__all__ = [
    "RerankPruneConfig",
    "RerankPruneModel",
    "load_model",
    "load_provence",
    "load_tokenizer",
    "resolve_model_path",
]
