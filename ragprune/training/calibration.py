"""Calibration fitted after training: the rank logit's probability and the sentence probabilities.

* :func:`fit_platt`: ``P(relevant | logit) = sigmoid(scale * logit + bias)`` on validation pairs, stored
  as ``RerankPruneConfig.calibration`` (Platt, "Probabilistic outputs for support vector machines", 1999).
* :func:`fit_sentence_calibration` + :func:`fold_calibration`: an affine map of the token logits fitted so
  that the sentence probability reads as P(sentence is gold), folded into the token head's linear layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ragprune.training.labels import IGNORE
from ragprune.training.sentences import sentence_probabilities

if TYPE_CHECKING:
    from ragprune.models import RerankPruneModel

TokenOutputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""One batch of held-out token outputs: ``(token_logits [B, L] fp32, sentence_ids [B, L], sentence_labels
[B, S])`` (``ragprune.training.thresholds.token_outputs``)."""


def fit_platt(
    pairs: Sequence[tuple[float, int]], relevant_grade: int = 2, max_iter: int = 200
) -> tuple[float, float]:
    """``(scale, bias)`` of the logistic fit of P(grade >= ``relevant_grade`` | logit) by maximum likelihood
    (L-BFGS from the identity ``(1, 0)``) on ``(logit, grade)`` pairs.

    ``ValueError`` when ``pairs`` is empty.
    """
    if not pairs:
        raise ValueError("Platt scaling needs at least one (logit, grade) pair")
    x = torch.tensor([float(p[0]) for p in pairs])
    y = torch.tensor([float(p[1] >= relevant_grade) for p in pairs])
    a, b = torch.ones(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([a, b], max_iter=max_iter)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(a * x + b, y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(a.detach()), float(b.detach())


def fit_sentence_calibration(
    batches: Sequence[TokenOutputs],
    max_iter: int = 100,
    log_scale_bounds: tuple[float, float] = (-3.0, 2.0),
) -> tuple[float, float]:
    """Scale ``a`` and bias ``b`` of the token logits so that the sentence probability
    ``mean_t sigmoid(a * logit_t + b)`` fits P(sentence is gold) on held-out token outputs.

    Maximum likelihood (L-BFGS, strong Wolfe line search) over the labelled sentences that have tokens:
    Platt scaling (Platt, 1999) applied before the pipeline's per-sentence mean. ``a = exp(log_a)`` with
    ``log_a`` clamped to ``log_scale_bounds``: a head that separates the held-out sentences cleanly would
    otherwise drive the scale to infinity (maximum likelihood on separable data), leaving probabilities
    of 0 and 1 and no threshold to choose. Being affine in the logit, the map folds into the token head
    (:func:`fold_calibration`), so the pipeline and the kernel are unchanged and a threshold reads as a
    probability. ``ValueError`` when ``batches`` is empty.
    """
    if not batches:
        raise ValueError("sentence calibration needs held-out token outputs")
    low, high = log_scale_bounds
    device = batches[0][0].device
    log_a = torch.zeros(1, device=device, requires_grad=True)
    b = torch.zeros(1, device=device, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_a, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        a = log_a.clamp(low, high).exp()
        losses, count = [], 0
        for logits, sentence_ids, labels in batches:
            probs, counts = sentence_probabilities(a * logits + b, sentence_ids, labels.shape[1])
            valid = (labels != IGNORE) & (counts > 0)
            p = probs[valid].clamp(1e-4, 1 - 1e-4)
            losses.append(F.binary_cross_entropy(p, labels[valid].float(), reduction="sum"))
            count += int(valid.sum())
        loss = torch.stack(losses).sum() / max(1, count)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_a.detach().clamp(low, high).exp()), float(b.detach())


def fold_calibration(model: RerankPruneModel, scale: float, bias: float) -> None:
    """Make the token head output ``scale * logit + bias`` (in place, on ``model.head("token").out``, the
    head's final ``nn.Linear``). ``TypeError`` for a token head without such a layer."""
    out = model.head("token").out
    if not isinstance(out, nn.Linear) or out.bias is None:
        raise TypeError(
            f"cannot fold a calibration into a token head whose output layer is {type(out).__name__}; "
            "it needs a final nn.Linear with a bias named `out`"
        )
    with torch.no_grad():
        out.weight.mul_(scale)
        out.bias.mul_(scale).add_(bias)
