"""One pass over the calibration sets: per-weight Fisher, mean gradients and input activation norms.

For each calibration set (``"domain"``, ``"general"``) and each parameter of the encoder layers:

* **Fisher** (diagonal empirical Fisher information): the mean over calibration batches of the squared
  gradient of the joint loss, ``F = E[g ** 2]`` (one group of candidates per batch by default, i.e. one
  query's listwise loss per "sample", as GAPrune's ``fisher.py`` averages per-sample squared gradients);
* **mean gradient** ``E[g]``: what GAPrune's gradient alignment compares between the two sets
  (``gradient.py`` averages the batch gradients before taking cosines);

and for every linear map of the layers, the sum over real (non-padding) tokens of its squared inputs per
input feature, from which Wanda's ``||X_j||_2`` is the square root (Sun et al. 2024, section 3).

The model runs in eval mode (no dropout, so the statistics are deterministic); only the layers'
parameters get gradients. Everything is returned on the CPU in float32.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ragprune.models.encoder import RerankPruneModel
from ragprune.weight_pruning.loss import Batch, JointLoss, model_inputs, to_device
from ragprune.weight_pruning.structures import layer_parameters, prunable_linears


@dataclass
class CalibrationStatistics:
    """Per-parameter statistics by calibration set name, and activation sums by linear module name.

    ``fisher[set][param]`` and ``gradient[set][param]`` have the parameter's shape; ``activations[module]``
    is ``[in_features]`` (sum of squared inputs over ``tokens[set]`` tokens of every set together).
    """

    fisher: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    gradient: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    activations: dict[str, torch.Tensor] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    loss: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def require(self, *sets: str) -> None:
        """``ValueError`` naming the calibration sets a method needs that were not measured."""
        missing = [name for name in sets if name not in self.fisher]
        if missing:
            raise ValueError(
                f"these importances need calibration data for {missing} (measured: {sorted(self.fisher)}); "
                f"pass {' and '.join('--' + name + '-data' for name in missing)}"
            )

    def activation_norms(self) -> dict[str, torch.Tensor]:
        """Wanda's ``||X_j||_2`` per input feature of each linear map ``[in_features]``."""
        if not self.activations:
            raise ValueError(
                "Wanda needs activations: pass calibration data (--domain-data or --general-data)"
            )
        return {name: total.sqrt() for name, total in self.activations.items()}


def collect_statistics(
    model: RerankPruneModel,
    batches: Mapping[str, Sequence[Batch]],
    loss: JointLoss | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> CalibrationStatistics:
    """Run ``loss`` forward and backward on every batch of every set and accumulate the statistics.

    ``batches``: set name -> batches from :func:`ragprune.weight_pruning.loss.group_batches`. The model is
    used in place (moved to ``device``, eval mode; gradients are cleared afterwards and the parameters'
    ``requires_grad`` flags restored). ``ValueError`` for a set without batches.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loss = loss or JointLoss()
    model.to(device).eval()
    tracked = layer_parameters(model)
    stats = CalibrationStatistics()
    start = time.perf_counter()
    with _gradients_only_for(model, tracked), _activation_sums(model) as activations:
        for name, set_batches in batches.items():
            if not set_batches:
                raise ValueError(f"calibration set {name!r} has no batches")
            squares = {p: torch.zeros_like(t) for p, t in tracked.items()}
            sums = {p: torch.zeros_like(t) for p, t in tracked.items()}
            total_loss = 0.0
            tokens = 0
            for index, batch in enumerate(set_batches):
                batch = to_device(batch, device)
                activations.mask = batch["attention_mask"]
                model.zero_grad(set_to_none=True)
                value = loss(model(**model_inputs(batch, device)), batch)["loss"]
                value.backward()
                for p, tensor in tracked.items():
                    if tensor.grad is not None:
                        squares[p] += tensor.grad.detach() ** 2
                        sums[p] += tensor.grad.detach()
                total_loss += float(value.detach())
                tokens += int(batch["attention_mask"].sum())
                if progress and (index + 1) % 16 == 0:
                    print(
                        f"  {name}: {index + 1}/{len(set_batches)} batches, "
                        f"loss {total_loss / (index + 1):.4f}"
                    )
            count = len(set_batches)
            stats.fisher[name] = {p: (t / count).float().cpu() for p, t in squares.items()}
            stats.gradient[name] = {p: (t / count).float().cpu() for p, t in sums.items()}
            stats.batches[name] = count
            stats.tokens[name] = tokens
            stats.loss[name] = total_loss / count
        stats.activations = {k: v.float().cpu() for k, v in activations.sums.items()}
    model.zero_grad(set_to_none=True)
    stats.seconds = time.perf_counter() - start
    return stats


@contextmanager
def _gradients_only_for(model: nn.Module, tracked: Mapping[str, nn.Parameter]) -> Iterator[None]:
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    keep = set(tracked)
    try:
        for name, p in model.named_parameters():
            p.requires_grad_(name in keep)
        yield
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])


class _ActivationSums:
    """Forward hooks that add up squared inputs of each prunable linear map over the tokens where
    ``mask`` (the current batch's attention mask ``[B, L]``) is 1."""

    def __init__(self) -> None:
        self.mask: torch.Tensor | None = None
        self.sums: dict[str, torch.Tensor] = {}

    def hook(self, name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = inputs[0].detach().float()
            if self.mask is not None and x.dim() == 3 and x.shape[:2] == self.mask.shape:
                x = x * self.mask.unsqueeze(-1).to(x.dtype)
            squared = (x**2).reshape(-1, x.shape[-1]).sum(0)
            self.sums[name] = self.sums[name] + squared if name in self.sums else squared

        return record


@contextmanager
def _activation_sums(model: nn.Module) -> Iterator[_ActivationSums]:
    recorder = _ActivationSums()
    handles = [
        module.register_forward_hook(recorder.hook(name)) for name, module in prunable_linears(model).items()
    ]
    try:
        yield recorder
    finally:
        for handle in handles:
            handle.remove()
