"""Inference precision and backend of the encoder: ``"fp32"``, or on the CPU only ``"int8"`` (PyTorch
dynamic int8), ``"onnx-fp32"`` or ``"onnx-int8"`` (ONNX Runtime, ``ragprune.pipeline.onnx_backend``).
Speed and quality of each on the shipped model: ``eval/results/bench_cpu.md``.

``"int8"`` method: PyTorch *dynamic* post-training quantization
(``torch.ao.quantization.quantize_dynamic``, or ``torch.quantization.quantize_dynamic`` on a torch without
``torch.ao``) of every ``nn.Linear`` of the
encoder (query/key/value/output projections and the feed-forward layers of each transformer block).
Weights are stored as int8 with one fp32 scale per tensor (``torch.qint8``); activations are
quantized to uint8 on the fly, per batch, from their observed min/max; the matrix products run in
int8 with int32 accumulation (fbgemm / x86 / onednn kernels) and outputs come back as fp32. Embeddings,
LayerNorm, softmax and the model's heads (rank, sentence and list heads) stay fp32, so logits keep
their units (the same log-odds as fp32, up to the quantization error measured in
``eval/results/bench_cpu.md``).

Source: PyTorch docs, "Quantization" -> "Dynamic Quantization"
(https://pytorch.org/docs/stable/quantization.html#post-training-dynamic-quantization) and the tutorial
"Dynamic Quantization on BERT" (https://pytorch.org/tutorials/intermediate/dynamic_quantization_bert_tutorial.html).

Deprecation: torch 2.10+ warns that ``torch.ao.quantization`` moves to the ``torchao`` package (the
warnings are silenced here); the eager dynamic path still works on torch 2.13. When it is removed,
port ``quantized_int8`` to ``torchao.quantization.quantize_(model, Int8DynamicActivationInt8WeightConfig())``.

These kernels exist only on the CPU: ``precision="int8"`` (or an ONNX precision) with a CUDA device is a
``ValueError`` (CUDA runs bf16, see ``ragprune.pipeline.process``); the CUDA path never imports ONNX Runtime.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable

import torch

from ragprune.models.encoder import RerankPruneModel

PRECISIONS = ("fp32", "int8", "onnx-fp32", "onnx-int8")
"""The values of ``precision`` (``RerankPruner``, ``ragprune rerank/prune --precision``)."""

DEFAULT_PRECISION = "fp32"
"""The precision used when the caller names none (see ``eval/results/bench_cpu.md`` for why)."""


def checked_precision(precision: str | None, device: torch.device) -> str:
    """``precision`` (``None`` = ``DEFAULT_PRECISION``) if it is one of ``PRECISIONS`` and runs on
    ``device``; else ``ValueError`` naming the choices or the fix."""
    if precision is None:
        return DEFAULT_PRECISION
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; use one of {PRECISIONS}")
    if precision != "fp32" and device.type != "cpu":
        raise ValueError(
            f"precision={precision!r} runs on the CPU only (PyTorch dynamic quantization and the ONNX "
            f"Runtime backend have no {device.type} kernels here); use device='cpu', or precision='fp32' "
            "(bf16 on CUDA)"
        )
    return precision


def cpu_model(model: RerankPruneModel, precision: str) -> RerankPruneModel:
    """A copy of ``model`` whose encoder runs at ``precision`` on the CPU (``"int8"``: :func:`quantized_int8`;
    ``"onnx-fp32"`` / ``"onnx-int8"``: ``ragprune.pipeline.onnx_backend.onnx_model``, ``ImportError`` naming
    the extra without onnxruntime); ``ValueError`` for ``"fp32"`` or an unknown precision."""
    if precision == "int8":
        return quantized_int8(model)
    if precision in PRECISIONS[2:]:
        from ragprune.pipeline.onnx_backend import onnx_model  # lazy: only the CPU ONNX path loads it

        return onnx_model(model, precision)
    raise ValueError(f"precision={precision!r}; cpu_model converts one of {PRECISIONS[1:]}")


def _quantize_dynamic() -> Callable[..., torch.nn.Module]:
    """torch's ``quantize_dynamic``, from whichever module holds it."""
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:  # torch older than 1.10
        from torch.quantization import quantize_dynamic
    return quantize_dynamic


def quantized_int8(model: RerankPruneModel) -> RerankPruneModel:
    """A copy of ``model`` (on the CPU, fp32, eval mode) whose encoder ``nn.Linear`` layers are dynamic
    int8 (see the module docstring); ``model`` itself is not changed."""
    ready = copy.deepcopy(model).to("cpu", torch.float32).eval()
    with warnings.catch_warnings():  # torch >= 2.10 announces the move to torchao (see the module docstring)
        warnings.filterwarnings("ignore", message=r".*(deprecated|torchao).*", category=DeprecationWarning)
        warnings.filterwarnings(
            "ignore", message=r"torch\.quantize_per_tensor.*deprecated", category=UserWarning
        )
        ready.encoder = _quantize_dynamic()(ready.encoder, {torch.nn.Linear}, dtype=torch.qint8)
    return ready


def is_quantized(model: torch.nn.Module) -> bool:
    """Whether any submodule of ``model`` is a dynamically quantized linear layer."""
    return any(type(module).__module__.startswith("torch.ao.nn.quantized") for module in model.modules())
