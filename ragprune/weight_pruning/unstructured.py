"""Masks: unstructured and N:M (2:4) sparsity of the encoder layers' linear maps.

* **unstructured**: in every output row of every linear map, the ``round(sparsity * in_features)``
  lowest-scored weights are zeroed (Wanda's per-output comparison group, Sun et al. 2024 section 3;
  GAPrune prunes one-shot per weight, as masks). Same shapes, so no speed-up without sparse kernels.
* **N:M**: in every group of ``M`` consecutive input weights of a row, the ``N`` highest-scored are kept
  (2:4 is what NVIDIA Ampere/Hopper sparse tensor cores run; Mishra et al. 2021). Sparsity is ``1 - N/M``.

Zeroed weights stay in the dense tensors, so the model saves and loads as usual. :func:`to_semi_structured`
swaps 2:4 weights for ``torch.sparse`` semi-structured tensors on a GPU that supports them, for speed.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ragprune.weight_pruning.structures import prunable_linears

Masks = dict[str, torch.Tensor]
"""Linear module name -> bool mask ``[out, in]`` (True = keep)."""


def parse_nm(structure: str) -> tuple[int, int] | None:
    """``(N, M)`` for a structure written ``"N:M"`` (``0 < N < M``), else ``None``."""
    match = re.fullmatch(r"(\d+):(\d+)", structure.strip())
    if not match:
        return None
    n, m = int(match.group(1)), int(match.group(2))
    if not 0 < n < m:
        raise ValueError(f"structure {structure!r}: N:M sparsity needs 0 < N < M (e.g. 2:4)")
    return n, m


def unstructured_masks(scores: dict[str, torch.Tensor], sparsity: float) -> Masks:
    """Per output row, zero the ``round(sparsity * in)`` lowest scores (ties: the later index goes first).
    ``ValueError`` for a sparsity outside ``[0, 1)``."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity={sparsity} must lie in [0, 1)")
    masks = {}
    for name, score in scores.items():
        rows, columns = score.shape
        drop = int(round(sparsity * columns))
        mask = torch.ones(rows, columns, dtype=torch.bool)
        if drop:
            # stable sort on (score, -index): the lowest scores first, later columns before earlier on ties
            order = torch.argsort(score.flip(1), dim=1, stable=True)
            lowest = columns - 1 - order[:, :drop]
            mask.scatter_(1, lowest, False)
        masks[name] = mask
    return masks


def nm_masks(scores: dict[str, torch.Tensor], n: int, m: int) -> Masks:
    """Keep the ``n`` highest scores in each group of ``m`` consecutive inputs of every row.
    ``ValueError`` if a map's input width is not a multiple of ``m``."""
    masks = {}
    for name, score in scores.items():
        rows, columns = score.shape
        if columns % m:
            raise ValueError(
                f"{name}: {columns} inputs are not a multiple of {m}; N:M sparsity needs them to be"
            )
        groups = score.reshape(rows, columns // m, m)
        top = torch.topk(groups, n, dim=-1, sorted=False).indices
        mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True)
        masks[name] = mask.reshape(rows, columns)
    return masks


def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero the masked-out weights in place. ``KeyError`` for a mask of no prunable linear map."""
    linears = prunable_linears(model)
    with torch.no_grad():
        for name, mask in masks.items():
            if name not in linears:
                raise KeyError(f"{name} is not a prunable linear map of this model")
            weight = linears[name].weight
            weight.mul_(mask.to(device=weight.device, dtype=weight.dtype))


def weight_sparsity(model: nn.Module) -> float:
    """Share of zero weights among the prunable linear maps' weights (biases not counted)."""
    zeros = total = 0
    for linear in prunable_linears(model).values():
        zeros += int((linear.weight == 0).sum())
        total += linear.weight.numel()
    return zeros / max(1, total)


def is_nm_sparse(weight: torch.Tensor, n: int, m: int) -> bool:
    """Whether every group of ``m`` consecutive inputs of every row has at most ``n`` nonzeros."""
    rows, columns = weight.shape
    if columns % m:
        return False
    return bool(((weight.reshape(rows, columns // m, m) != 0).sum(-1) <= n).all())


def to_semi_structured(model: nn.Module) -> str | None:
    """Replace the 2:4-sparse weights of the prunable linear maps by ``torch.sparse`` semi-structured
    tensors (cuSPARSELt / CUTLASS kernels) so the GPU skips the zeros; in place, for inference only.

    Returns ``None`` when done, else why not (no CUDA, an unsupported GPU or dtype, a weight that is not
    2:4 sparse): the model is then left unchanged. Needs fp16/bf16 weights on a GPU of compute capability
    8.0 or higher.
    """
    linears = prunable_linears(model)
    first = next(iter(linears.values())).weight
    if first.device.type != "cuda":
        return "semi-structured sparse kernels run on CUDA GPUs only"
    if torch.cuda.get_device_capability(first.device) < (8, 0):
        return "semi-structured sparse kernels need a GPU of compute capability >= 8.0"
    if first.dtype not in (torch.float16, torch.bfloat16):
        return f"semi-structured sparse kernels need fp16/bf16 weights, not {first.dtype}"
    if not all(is_nm_sparse(linear.weight, 2, 4) for linear in linears.values()):
        return "the weights are not 2:4 sparse"
    try:
        from torch.sparse import to_sparse_semi_structured

        converted = {
            name: to_sparse_semi_structured(linear.weight.detach()) for name, linear in linears.items()
        }
    except (RuntimeError, ValueError, ImportError) as error:
        return f"torch could not build semi-structured tensors: {error}"
    for name, linear in linears.items():
        linear.weight = nn.Parameter(converted[name], requires_grad=False)
    return None
