"""Resumable training state: one ``checkpoint.pt`` per run, rewritten after every epoch."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Where a run stands: optimiser ``step``, the next ``epoch`` to run, the validation ``history``,
    batches ``skipped`` for a non-finite loss, and the best validation score with its weights."""

    step: int = 0
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    best_ndcg: float = -1.0

    def keep_if_best(self, model: nn.Module, ndcg: float) -> bool:
        """Remember a copy of ``model``'s weights when ``ndcg`` beats the best so far; whether it did."""
        if ndcg <= self.best_ndcg:
            return False
        self.best_ndcg = ndcg
        self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return True


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainState,
    rng: random.Random,
    config: dict[str, Any],
) -> None:
    """Write the model, optimiser, scheduler, :class:`TrainState`, sampling ``rng`` state and the run's
    configuration (``TrainConfig.to_dict()``) to ``path``."""
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": state.step,
            "epoch": state.epoch,
            "history": state.history,
            "skipped": state.skipped,
            "best_state": state.best_state,
            "best_ndcg": state.best_ndcg,
            "rng": rng.getstate(),
            "config": config,
        },
        path,
    )


def load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rng: random.Random,
    device: torch.device,
    config: dict[str, Any] | None = None,
) -> TrainState:
    """Restore :func:`save_checkpoint`'s file into ``model``, ``optimizer``, ``scheduler`` and ``rng`` (in
    place) and return the :class:`TrainState`. With ``config`` (the resuming run's
    ``TrainConfig.to_dict()``), a warning names every setting that differs from the checkpoint's. The
    file is a full pickle (``weights_only=False``): load only checkpoints a run of yours wrote."""
    saved = torch.load(path, map_location=device, weights_only=False)
    before = saved.get("config")
    if config is not None and before is not None:
        changed = sorted(k for k in set(config) | set(before) if config.get(k) != before.get(k))
        if changed:
            log.warning(
                "resuming %s with other settings than it was written with: %s",
                path,
                {k: (before.get(k), config.get(k)) for k in changed},
            )
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    rng.setstate(saved["rng"])
    return TrainState(
        step=saved["step"],
        epoch=saved["epoch"],
        history=saved["history"],
        skipped=saved["skipped"],
        best_state=saved["best_state"],
        best_ndcg=saved["best_ndcg"],
    )
