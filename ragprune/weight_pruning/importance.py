"""Importance scores of weights and of structures: magnitude, Wanda, Fisher and GAPrune's DAI.

Higher is more important; pruning removes the lowest. Per weight (for masks) the scores cover the linear
maps of the encoder layers (``prunable_linears``); per structure (heads, FFN neurons, layers) they are
built from sums over each structure's parameters (``ragprune.weight_pruning.structures``).

* **magnitude**: ``|W|``; per structure the mean ``|w|`` of its weights and biases (group L1 norm).
* **wanda** (Sun et al., "A Simple and Effective Pruning Approach for LLMs", ICLR 2024, eq. 1):
  ``|W_ij| * ||X_j||_2`` with ``X`` the inputs of the linear map on the calibration tokens; per structure
  the sum over its weights (as Wanda-sp / FLAP sum over a group).
* **fisher** (diagonal empirical Fisher on the *general* set only, the baseline of GAPrune's table 2):
  ``F_gen * W ** 2``, the second-order estimate of the loss increase when the weight is zeroed (Optimal
  Brain Damage with the Fisher for the Hessian); per structure the sum.
* **gaprune**: GAPrune's Domain Alignment Importance (Tang & Yang 2025, arXiv 2509.10844, section 3.3; the
  authors' ``compute_dai_importance``)::

      DAI = softplus( (F_dom * |W| - beta * F_gen * |W|) * clamp(1 + alpha * s, 1 - c, 1 + c)
                      + gamma * sqrt(|W|) )

  with ``s`` the alignment of the domain and general gradients. As published, ``s`` is per weight: the
  element-wise product of the two *whole-tensor* unit gradients (then a 3x3 mean), so ``|s|`` is about
  ``1 / numel`` (~1e-6) and the factor stays 1: the alignment does nothing. Here (``alignment="structure"``,
  the default) ``s`` is the cosine of the two mean gradients restricted to each structure (a head, a
  neuron, a layer; for per-weight scores, the weight's output row), a value in [-1, 1] that moves the factor
  over its whole clamp range. ``alignment="paper"`` keeps the published element-wise term for comparison.
  The raw Fisher products (~1e-8) are also negligible next to ``gamma * sqrt(|W|)`` (~0.1), which would
  reduce DAI to magnitude pruning; ``normalize=True`` (default) divides both Fisher products by the mean
  domain product and ``|W|`` by its mean over the structures compared (per matrix for weights, per kind for
  structures), so each term is O(1). ``normalize=False`` is the formula in raw units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ragprune.weight_pruning.statistics import CalibrationStatistics
from ragprune.weight_pruning.structures import (
    StructureValues,
    layer_parameters,
    prunable_linears,
    structure_sizes,
    structure_sums,
)

METHODS = ("magnitude", "wanda", "fisher", "gaprune")
ALIGNMENTS = ("structure", "paper")
EPS = 1e-12


@dataclass(frozen=True)
class DAIConfig:
    """Parameters of the DAI score.

    ``beta``: weight of the general Fisher (>= 0); ``alpha``: slope of the alignment factor; ``clamp``: the
    factor is clamped to ``[1 - clamp, 1 + clamp]``; ``gamma``: weight of ``sqrt(|W|)``; ``normalize``: put
    the terms on one scale (module docstring); ``alignment``: ``"structure"`` or ``"paper"``.

    ``alpha``, ``clamp`` and ``gamma`` are the authors' (``compute_importance_scores``). ``beta`` is 0.25, not
    their 1.0: on this model the general Fisher exceeds the domain Fisher for 97% of heads and 80% of FFN
    neurons (the two correlate at 0.94 / 0.86), so with ``beta=1`` the structures that matter most to both
    sets get the lowest scores and go first. 0.25 had the lowest domain joint loss after one-shot pruning of
    heads and FFN neurons at 50% among {0, 0.25, 0.5, 1} on held-out *training* groups
    (``eval/weight_pruning.py --dai-sweep``); :data:`PUBLISHED_BETA` is the authors' value.
    """

    beta: float = 0.25
    alpha: float = 0.2
    clamp: float = 0.2
    gamma: float = 0.5
    normalize: bool = True
    alignment: str = "structure"

    def __post_init__(self) -> None:
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment={self.alignment!r}; use one of {ALIGNMENTS}")
        if self.beta < 0 or self.clamp < 0 or self.gamma < 0:
            raise ValueError("beta, clamp and gamma must be >= 0")

    def factor(self, alignment: torch.Tensor) -> torch.Tensor:
        """The alignment factor ``clamp(1 + alpha * s, 1 - clamp, 1 + clamp)``."""
        return torch.clamp(1.0 + self.alpha * alignment, 1.0 - self.clamp, 1.0 + self.clamp)


PUBLISHED_BETA = 1.0
"""The authors' ``beta`` (``compute_dai_importance``)."""


def dai_score(
    domain: torch.Tensor,
    general: torch.Tensor,
    magnitude: torch.Tensor,
    alignment: torch.Tensor,
    config: DAIConfig,
) -> torch.Tensor:
    """``softplus((domain - beta * general) * factor(alignment) + gamma * sqrt(magnitude))``, element-wise.

    ``domain`` and ``general`` are the Fisher-times-``|W|`` terms, ``magnitude`` is ``|W|`` (all already
    aggregated or normalised as the caller wants); shapes broadcast.
    """
    objective = (domain - config.beta * general) * config.factor(alignment)
    return F.softplus(objective + config.gamma * torch.sqrt(magnitude + 1e-8))


def _check_method(method: str, stats: CalibrationStatistics | None) -> CalibrationStatistics | None:
    if method not in METHODS:
        raise ValueError(f"unknown importance method {method!r}; use one of {METHODS}")
    if method != "magnitude" and stats is None:
        raise ValueError(f"method {method!r} needs calibration statistics (collect_statistics)")
    if method == "fisher" and stats is not None:
        stats.require("general")
    if method == "gaprune" and stats is not None:
        stats.require("domain", "general")
    return stats


# ---- per weight -----------------------------------------------------------------------------------


def weight_scores(
    model: nn.Module,
    method: str,
    stats: CalibrationStatistics | None = None,
    dai: DAIConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Score of every weight of every prunable linear map: module name -> ``[out, in]`` float32 (CPU).

    ``ValueError`` for an unknown method or statistics the method needs but lacks.
    """
    _check_method(method, stats)
    dai = dai or DAIConfig()
    scores = {}
    norms = stats.activation_norms() if method == "wanda" and stats is not None else {}
    for name, linear in prunable_linears(model).items():
        weight = linear.weight.detach().float().cpu()
        magnitude = weight.abs()
        key = name + ".weight"
        if method == "magnitude":
            scores[name] = magnitude
        elif method == "wanda":
            scores[name] = magnitude * norms[name].unsqueeze(0)
        elif method == "fisher":
            assert stats is not None
            scores[name] = stats.fisher["general"][key] * weight**2
        else:
            assert stats is not None
            domain = stats.fisher["domain"][key] * magnitude
            general = stats.fisher["general"][key] * magnitude
            if dai.normalize:
                scale = domain.mean().clamp(min=EPS)
                domain, general = domain / scale, general / scale
                magnitude = magnitude / magnitude.mean().clamp(min=EPS)
            alignment = weight_alignment(stats, key, dai.alignment)
            scores[name] = dai_score(domain, general, magnitude, alignment, dai)
    return scores


def weight_alignment(stats: CalibrationStatistics, key: str, mode: str = "structure") -> torch.Tensor:
    """The gradient alignment ``s`` of one weight matrix's entries (``[out, in]`` or broadcastable).

    ``"structure"``: the cosine of the domain and general mean gradients over each output row ``[out, 1]``.
    ``"paper"``: GAPrune's element-wise product of the two whole-tensor unit gradients, smoothed by a
    3x3 mean (``compute_elementwise_alignment``): values of order ``1 / numel``.
    """
    domain, general = stats.gradient["domain"][key], stats.gradient["general"][key]
    if mode == "structure":
        dot = (domain * general).sum(1, keepdim=True)
        norm = (domain.norm(dim=1, keepdim=True) * general.norm(dim=1, keepdim=True)).clamp(min=EPS)
        return dot / norm
    if mode != "paper":
        raise ValueError(f"alignment={mode!r}; use one of {ALIGNMENTS}")
    product = (domain / domain.norm().clamp(min=EPS)) * (general / general.norm().clamp(min=EPS))
    if product.dim() < 2:
        return product
    return F.avg_pool2d(product[None, None], 3, stride=1, padding=1, count_include_pad=True)[0, 0]


# ---- per structure --------------------------------------------------------------------------------


def structure_scores(
    model: nn.Module,
    method: str,
    stats: CalibrationStatistics | None = None,
    dai: DAIConfig | None = None,
) -> StructureValues:
    """Score of every head, FFN neuron and layer of the encoder (``StructureValues``, float32 CPU).

    ``ValueError`` for an unknown method or statistics the method needs but lacks.
    """
    _check_method(method, stats)
    dai = dai or DAIConfig()
    params = {name: p.detach().float().cpu() for name, p in layer_parameters(model).items()}
    sizes = structure_sizes(model)
    if method == "magnitude":
        sums = structure_sums(model, {name: p.abs() for name, p in params.items()})
        return _divide(sums, sizes)
    assert stats is not None
    if method == "wanda":
        norms = stats.activation_norms()
        values = {
            name + ".weight": linear.weight.detach().float().cpu().abs() * norms[name].unsqueeze(0)
            for name, linear in prunable_linears(model).items()
        }
        return structure_sums(model, values)
    if method == "fisher":
        fisher = stats.fisher["general"]
        return structure_sums(model, {name: fisher[name] * p**2 for name, p in params.items()})
    domain = structure_sums(model, {n: stats.fisher["domain"][n] * p.abs() for n, p in params.items()})
    general = structure_sums(model, {n: stats.fisher["general"][n] * p.abs() for n, p in params.items()})
    magnitude = _divide(structure_sums(model, {n: p.abs() for n, p in params.items()}), sizes)
    alignment = structure_alignment(model, stats, dai.alignment)
    heads, neurons, layers = [], [], torch.zeros(0)
    for kind in ("heads", "neurons", "layers"):
        d, g, m = domain.of(kind), general.of(kind), magnitude.of(kind)
        if dai.normalize:
            scale = torch.cat(d).mean().clamp(min=EPS)
            m_scale = torch.cat(m).mean().clamp(min=EPS)
            d, g, m = [t / scale for t in d], [t / scale for t in g], [t / m_scale for t in m]
        scored = [dai_score(dl, gl, ml, al, dai) for dl, gl, ml, al in zip(d, g, m, alignment.of(kind))]
        if kind == "heads":
            heads = scored
        elif kind == "neurons":
            neurons = scored
        else:
            layers = scored[0]
    return StructureValues(heads, neurons, layers)


def structure_alignment(
    model: nn.Module, stats: CalibrationStatistics, mode: str = "structure"
) -> StructureValues:
    """The gradient alignment ``s`` of each structure.

    ``"structure"``: cosine of the domain and general mean gradients restricted to the structure's
    parameters, in [-1, 1] (0 where a gradient is zero). ``"paper"``: the mean over the structure of the
    published per-weight term (:func:`weight_alignment` with ``"paper"``; biases use the 1-D product).
    """
    stats.require("domain", "general")
    domain, general = stats.gradient["domain"], stats.gradient["general"]
    if mode == "paper":
        values = {}
        for name in domain:
            d, g = domain[name], general[name]
            product = (d / d.norm().clamp(min=EPS)) * (g / g.norm().clamp(min=EPS))
            if product.dim() >= 2:
                product = F.avg_pool2d(product[None, None], 3, stride=1, padding=1, count_include_pad=True)[
                    0, 0
                ]
            values[name] = product
        return _divide(structure_sums(model, values), structure_sizes(model))
    if mode != "structure":
        raise ValueError(f"alignment={mode!r}; use one of {ALIGNMENTS}")
    dot = structure_sums(model, {n: domain[n] * general[n] for n in domain})
    dd = structure_sums(model, {n: domain[n] ** 2 for n in domain})
    gg = structure_sums(model, {n: general[n] ** 2 for n in domain})
    cos = [
        [x / (y * z).sqrt().clamp(min=EPS) for x, y, z in zip(dot.of(k), dd.of(k), gg.of(k))]
        for k in ("heads", "neurons", "layers")
    ]
    return StructureValues(cos[0], cos[1], cos[2][0])


def alignment_factors(
    model: nn.Module, stats: CalibrationStatistics, dai: DAIConfig | None = None
) -> StructureValues:
    """DAI's multiplicative alignment factor of every structure (1 = no effect)."""
    dai = dai or DAIConfig()
    return structure_alignment(model, stats, dai.alignment).map(dai.factor)


def _divide(sums: StructureValues, sizes: StructureValues) -> StructureValues:
    return StructureValues(
        [s / n.clamp(min=1) for s, n in zip(sums.heads, sizes.heads)],
        [s / n.clamp(min=1) for s, n in zip(sums.neurons, sizes.neurons)],
        sums.layers / sizes.layers.clamp(min=1),
    )
