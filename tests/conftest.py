"""Shared fixtures: a tiny rerank + prune model (random weights, MiniLM's real tokenizer) and a pruner on it.

Plain helpers that test modules import live next to this file: ``tiny_models`` (encoder configs, the
tokenizer), ``sample_texts`` (a query and passages), ``kernel_checks``, ``server_helpers`` and
``shared_data`` (the data folder, ``needs_data``).
Hypothesis runs derandomized and without its example database, so every run tests the same examples.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from hypothesis import settings
from tiny_models import minilm_tokenizer_path, tiny_encoder_config

if TYPE_CHECKING:
    from ragprune.pipeline import RerankPruner

settings.register_profile("deterministic", derandomize=True, database=None)
settings.load_profile("deterministic")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ragprune model folder: 2-layer BERT (hidden 32) with random weights and MiniLM's tokenizer."""
    from transformers import BertConfig

    from ragprune.models import RerankPruneConfig, RerankPruneModel, load_tokenizer

    torch.manual_seed(0)
    model = RerankPruneModel(tiny_encoder_config(BertConfig), RerankPruneConfig(max_length=64, threshold=0.5))
    folder = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(folder, load_tokenizer(minilm_tokenizer_path()))
    return folder


@pytest.fixture(scope="session")
def pruner(tiny_model_dir: Path) -> Iterator[RerankPruner]:
    """A ``RerankPruner`` on the tiny model (CPU, batches of 4 rows), shared by every test of a worker."""
    from ragprune.pipeline import RerankPruner

    with RerankPruner.load(tiny_model_dir, device="cpu", batch_size=4) as loaded:
        yield loaded


@pytest.fixture()
def process_threads(pruner: RerankPruner, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of the threads ``pruner.process`` runs on during the test, one per call."""
    threads: list[int] = []
    original = pruner.process

    def recording_process(*args, **kwargs):
        threads.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(pruner, "process", recording_process)
    return threads
