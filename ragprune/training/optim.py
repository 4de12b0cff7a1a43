"""Optimiser and learning-rate schedule of a training run (AdamW, linear warm-up then linear decay)."""

from __future__ import annotations

import math

import torch
from torch import nn


def build_optimizer(model: nn.Module, lr: float, head_lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW (Loshchilov and Hutter, ICLR 2019) with two parameter groups: the encoder (parameters named
    ``encoder.*``) at ``lr`` and everything else (the heads) at ``head_lr``; one ``weight_decay``."""
    head_params = [p for name, p in model.named_parameters() if not name.startswith("encoder.")]
    encoder_params = [p for name, p in model.named_parameters() if name.startswith("encoder.")]
    return torch.optim.AdamW(
        [{"params": encoder_params, "lr": lr}, {"params": head_params, "lr": head_lr}],
        weight_decay=weight_decay,
    )


def schedule_steps(
    groups: int, queries_per_step: int, epochs: int, max_steps: int, warmup: float
) -> tuple[int, int]:
    """``(total_steps, warmup_steps)`` of a run over ``groups`` training groups: ``ceil(groups /
    queries_per_step)`` steps per epoch times ``epochs``, capped at ``max_steps`` when that is > 0; warm-up
    is the share ``warmup`` of them (at least one step)."""
    total = math.ceil(groups / queries_per_step) * epochs
    if max_steps:
        total = min(total, max_steps)
    return total, max(1, int(warmup * total))


def warmup_linear_decay(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate factor ``(s + 1) / warmup_steps`` during warm-up, then falling linearly to 0 at
    ``total_steps`` (step ``s`` counts from 0; the scheduler steps once per optimiser step)."""
    decay = max(1, total_steps - warmup_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup_steps, max(0.0, (total_steps - s) / decay))
    )
