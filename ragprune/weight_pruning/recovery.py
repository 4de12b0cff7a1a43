"""Recovery after pruning: a short distillation of the pruned model (student) from the dense one (teacher).

"Prune, then distil" (Minitron, Muralidharan et al. 2024; Sreenivas et al. 2024) with the outputs this model
has, on the calibration batches (``ragprune.weight_pruning.loss.group_batches``):

* rank: KL from the teacher's softmax over each group's candidates to the student's
  (:class:`~ragprune.training.losses.ListwiseDistillationLoss`, ``gold_mix=0``, temperature ``tau``). With
  ``teacher_weight`` w > 0, a group whose passages carry external teacher scores (``batch["teacher"]``,
  e.g. a bi-encoder + SPLADE ensemble: ``training/recovery_teacher.py``) is distilled towards
  ``(1 - w) * dense + w * (mean(dense) + std(dense) * z(external))`` per group: the external order,
  rescaled to the dense logits' location and spread, mixed in. This is the "teacher + student" mix
  the shipped model was trained on (``training/mix_teacher.py``), here so the pruned model can learn what the
  dense one missed;
* token: the Bernoulli KL divergence from the teacher's token keep-probabilities to the student's (binary
  cross-entropy against the teacher's probabilities minus their entropy), on the passage tokens
  (``sentence_ids >= 0``);
* hidden: mean squared error between the last hidden states on real tokens, divided by the teacher's
  hidden-state variance (so the weight is scale-free); the heads read these states;
* layers (``layer_weight`` > 0): the same scaled error between each earlier student layer's output and the
  output of the teacher layer it is paired with, averaged over those layers (hidden states only; TinyBERT,
  Jiao et al. 2020, section 3.1, also distils embeddings and attention maps). A student made by removing
  layers is paired by the layers it kept (:func:`kept_layer_map`: each kept layer learns the output of the
  block of teacher layers it now stands for); otherwise by TinyBERT's uniform mapping (:func:`layer_map`).
  So a shortened encoder is taught what the removed layers computed on the way, not only at the end.

``loss = rank_weight * rank + token_weight * token + hidden_weight * hidden + layer_weight * layers``.
AdamW, linear warm-up over the first 10% of steps then linear decay, gradient-norm clip 1.0, model in eval
mode (no dropout: deterministic). Masks (unstructured / N:M) are re-applied after every step, so zeros
stay zero.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ragprune.models.encoder import RerankPruneModel
from ragprune.training.losses import ListwiseDistillationLoss
from ragprune.weight_pruning.loss import Batch, model_inputs, to_device
from ragprune.weight_pruning.structured import check_kept_layers
from ragprune.weight_pruning.unstructured import Masks, apply_masks


@dataclass(frozen=True)
class RecoveryConfig:
    """Settings of the distillation (defaults sized for a few hundred steps)."""

    steps: int = 200
    lr: float = 1e-4
    weight_decay: float = 0.01
    tau: float = 1.0
    rank_weight: float = 1.0
    token_weight: float = 1.0
    hidden_weight: float = 1.0
    layer_weight: float = 0.0
    """Weight of the intermediate-layer term (0: only the last hidden states are matched)."""
    layer_map: str = "kept"
    """How student layers are paired with teacher layers when layers were removed: ``"kept"``
    (:func:`kept_layer_map`) or ``"uniform"`` (:func:`layer_map`, TinyBERT's)."""
    teacher_weight: float = 0.0
    """Share of the external teacher in the rank target, in [0, 1] (0: the dense model alone)."""
    groups_per_step: int = 1
    """Groups per step when recovery has its own groups (``compress(recovery_groups=...)``); the calibration
    batches hold one group each."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lr <= 0 or self.tau <= 0 or self.groups_per_step < 1:
            raise ValueError("steps must be >= 0, lr and tau > 0, groups_per_step >= 1")
        if not self.layer_weight >= 0:  # also refuses NaN
            raise ValueError(f"layer_weight must be >= 0, got {self.layer_weight}")
        if self.layer_map not in LAYER_MAPS:
            raise ValueError(f"layer_map must be one of {LAYER_MAPS}, got {self.layer_map!r}")
        if not 0.0 <= self.teacher_weight <= 1.0:
            raise ValueError(f"teacher_weight must be in [0, 1], got {self.teacher_weight}")


def distill(
    student: RerankPruneModel,
    teacher: RerankPruneModel,
    batches: Sequence[Batch],
    config: RecoveryConfig | None = None,
    masks: Masks | None = None,
    device: torch.device | str | None = None,
    layer_targets: Sequence[int] | None = None,
) -> dict:
    """Train ``student`` in place for ``config.steps`` steps on ``batches`` (cycled in a seeded shuffled
    order); ``teacher`` is only read. ``layer_targets``: the teacher layer (0-based) each student layer
    learns from when ``config.layer_weight`` > 0 (default: :func:`layer_map`; ``compress`` passes
    :func:`kept_layer_map` for a student made by removing layers). Returns ``{"steps", "seconds",
    "first_loss", "last_loss", "config"}`` (losses averaged over the first / last 10% of steps), and
    ``"layer_targets"`` with the layer term. ``ValueError`` without batches, or for a layer term with a
    one-layer student (nothing to pair before the last layer) or ``layer_targets`` that do not fit.
    """
    config = config or RecoveryConfig()
    if not batches:
        raise ValueError("recovery needs batches (--recover-data, or --domain-data / --general-data)")
    targets: list[int] | None = None
    if config.layer_weight > 0:
        targets = _checked_targets(student, teacher, layer_targets)
    layers = targets is not None  # every layer's output is needed for the layer term only
    device = torch.device(device) if device is not None else next(student.parameters()).device
    student.to(device).eval()
    teacher.to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    for parameter in student.parameters():
        parameter.requires_grad_(True)
    rank_loss = ListwiseDistillationLoss(temperature=config.tau, gold_mix=0.0)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, config.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(
            (step + 1) / warmup, max(0.0, (config.steps - step) / max(1, config.steps - warmup))
        ),
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    rng = random.Random(config.seed)
    order: list[int] = []
    losses = []
    start = time.perf_counter()
    for _ in range(config.steps):
        if not order:
            order = list(range(len(batches)))
            rng.shuffle(order)
        batch = to_device(batches[order.pop()], device)
        inputs = model_inputs(batch, device)
        with torch.no_grad(), autocast:
            target = teacher(**inputs, layers=layers)
        with autocast:
            output = student(**inputs, layers=layers)
        loss = _distillation_loss(output, target, batch, rank_loss, config, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if masks:
            apply_masks(student, masks)
        losses.append(float(loss.detach()))
    student.eval()
    tenth = max(1, len(losses) // 10)
    return {
        "steps": config.steps,
        "seconds": time.perf_counter() - start,
        "first_loss": sum(losses[:tenth]) / tenth if losses else None,
        "last_loss": sum(losses[-tenth:]) / tenth if losses else None,
        "config": asdict(config),
        **({"layer_targets": targets} if targets is not None else {}),
    }


def _checked_targets(
    student: RerankPruneModel, teacher: RerankPruneModel, targets: Sequence[int] | None
) -> list[int]:
    count = student.backbone_config.num_hidden_layers
    total = teacher.backbone_config.num_hidden_layers
    if count < 2:
        raise ValueError(
            "the layer term pairs the layers before the last one, and the student has one layer: "
            "set layer_weight 0 (--recover-layer-weight 0)"
        )
    chosen = list(targets) if targets is not None else layer_map(count, total)
    if len(chosen) != count or not all(0 <= t < total for t in chosen):
        raise ValueError(
            f"layer_targets {chosen} must name one teacher layer (0..{total - 1}) per student layer ({count})"
        )
    return chosen


def _distillation_loss(
    output: dict[str, torch.Tensor],
    target: dict[str, torch.Tensor],
    batch: Batch,
    rank_loss: ListwiseDistillationLoss,
    config: RecoveryConfig,
    layer_targets: Sequence[int] | None = None,
) -> torch.Tensor:
    shape = batch["gold"].shape
    rank_target = target["rank"].float().view(shape)
    if config.teacher_weight > 0 and "teacher" in batch:
        rank_target = mixed_rank_target(rank_target, batch["teacher"], config.teacher_weight)
    rank = rank_loss(output["rank"].float().view(shape), rank_target)
    passage = batch["sentence_ids"] >= 0
    token_target = torch.sigmoid(target["token"].float())
    # Bernoulli KL(teacher || student) = BCE(student; teacher probabilities) - teacher entropy (0 when equal)
    token = F.binary_cross_entropy_with_logits(output["token"].float(), token_target, reduction="none")
    token = token - F.binary_cross_entropy(token_target, token_target, reduction="none")
    token = (token * passage).sum() / passage.sum().clamp(min=1)
    real = batch["attention_mask"].bool()
    hidden = _scaled_error(output["hidden"], target["hidden"], real)
    loss = config.rank_weight * rank + config.token_weight * token + config.hidden_weight * hidden
    if config.layer_weight > 0 and layer_targets:
        student_layers, teacher_layers = output["layers"], target["layers"]
        pairs = list(enumerate(layer_targets))[:-1]  # the last student layer is the hidden term's
        errors = [_scaled_error(student_layers[s], teacher_layers[t], real) for s, t in pairs]
        loss = loss + config.layer_weight * torch.stack(errors).mean()
    return loss


def _scaled_error(student: torch.Tensor, teacher: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the real tokens of ``[B, L, H]`` states, divided by the teacher's variance."""
    student, teacher = student.float()[real], teacher.float()[real]
    return F.mse_loss(student, teacher) / teacher.var().clamp(min=1e-6)


LAYER_MAPS = ("kept", "uniform")
"""``RecoveryConfig.layer_map`` choices."""


def kept_layer_map(kept: Sequence[int], teacher_layers: int) -> list[int]:
    """The teacher layer (0-based) each layer of a student made by keeping teacher layers ``kept`` learns
    from: kept layer ``kept[i]`` now stands for teacher layers ``kept[i] .. kept[i + 1] - 1``, so it learns
    the output of ``kept[i + 1] - 1``; the last learns the teacher's last. Keeping 0, 1, 2, 5 of 6:
    ``[0, 1, 4, 5]``; 0-3: ``[0, 1, 2, 5]``. ``ValueError`` unless ``kept`` are distinct teacher layers."""
    check_kept_layers(kept, teacher_layers)
    order = sorted(kept)
    return [following - 1 for following in order[1:]] + [teacher_layers - 1]


def layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """The teacher layer (0-based) each student layer learns from under TinyBERT's uniform mapping (Jiao
    et al. 2020, section 3.1: 1-based student layer m learns from teacher layer m * N / M): here
    ``(m + 1) * N / M`` rounded half up, minus 1, for 0-based student layer m of M and N teacher layers; the
    last student layer always maps to the last teacher layer. 4 of 6 layers: ``[1, 2, 4, 5]``.
    ``ValueError`` for a student with no layers or more layers than the teacher."""
    if not 1 <= student_layers <= teacher_layers:
        raise ValueError(
            "layer mapping needs 1 <= student layers <= teacher layers, "
            f"got {student_layers} and {teacher_layers}"
        )
    return [int((m + 1) * teacher_layers / student_layers + 0.5) - 1 for m in range(student_layers)]


def mixed_rank_target(dense: torch.Tensor, external: torch.Tensor, weight: float) -> torch.Tensor:
    """``(1 - weight) * dense + weight * (mean(dense) + std(dense) * z(external))`` per row (group) of the
    ``[Q, G]`` logits (population standard deviations); rows where ``external`` is not all finite keep
    ``dense``. A constant ``external`` row (up to rounding) has ``z = 0``; a constant ``dense`` row stays
    constant (its softmax, the target, is uniform either way)."""
    mean, std = dense.mean(dim=1, keepdim=True), dense.std(dim=1, keepdim=True, correction=0)
    centred = external - external.mean(dim=1, keepdim=True)
    spread = external.std(dim=1, keepdim=True, correction=0)
    flat = spread <= 1e-6 * external.abs().amax(dim=1, keepdim=True)  # constant up to rounding
    z = torch.where(flat, 0.0, centred / spread.clamp(min=torch.finfo(spread.dtype).tiny))
    mixed = (1 - weight) * dense + weight * (mean + std * z)
    return torch.where(torch.isfinite(external).all(dim=1, keepdim=True), mixed, dense)
