"""The model options shared by every sub-command that runs the model, and loading from them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ragprune.cli.options import positive_int

if TYPE_CHECKING:
    from ragprune.pipeline import RerankPruner


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="model folder: a ragprune model or a Provence checkpoint "
        "(default: the model shipped with ragprune)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        help="encoder rows (query + passage chunks) per forward pass (default 64)",
    )


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    """``--precision {fp32,int8,onnx-fp32,onnx-int8}`` (``RerankPruner(precision=...)``,
    ``ragprune.pipeline.precision``)."""
    parser.add_argument(
        "--precision",
        # ragprune.pipeline.precision.PRECISIONS (not imported: --help stays fast)
        choices=("fp32", "int8", "onnx-fp32", "onnx-int8"),
        default=None,
        help="encoder precision and backend: 'fp32' (default; bf16 on CUDA); CPU only: 'int8' (PyTorch "
        "dynamic int8 of the encoder's linear layers), 'onnx-fp32' (ONNX Runtime with fused attention, the "
        "same scores as fp32) or 'onnx-int8' (ONNX Runtime dynamic int8, per channel); the ONNX ones need "
        "pip install 'ragprune[onnx]' and build a cached file on first use. Speed and quality of each: "
        "eval/results/bench_cpu.md",
    )


def checked_device(name: str | None) -> str | None:
    """``name`` if torch can run on it here; else a ``UserError`` saying which devices exist."""
    from ragprune.cli import UserError

    if name is None:
        return None
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {name!r} is not a device name; use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return name
    if device.type != "cuda":
        raise UserError(f"--device {name}: ragprune runs on cpu or cuda, not {device.type}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise UserError(f"--device {name}: no CUDA GPU is visible to torch here; use --device cpu")
    if device.index is not None and device.index >= count:
        raise UserError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return name


def load_pruner(args: argparse.Namespace, mode: str = "pointwise") -> RerankPruner:
    """The model the options name; a ``mode`` the model cannot run is a ``UserError`` naming the fix."""
    from ragprune.cli import UserError
    from ragprune.pipeline import RerankPruner

    device = checked_device(args.device)
    precision = getattr(args, "precision", None)
    try:
        return RerankPruner.load(
            args.model, device=device, batch_size=args.batch_size, mode=mode, precision=precision
        )
    except ValueError as error:
        if "needs a model with a list-level head" in str(error):
            raise UserError(f"--mode {mode}: {error}") from error
        if str(error).startswith("precision="):
            raise UserError(f"--precision {precision}: {error}") from error
        raise
    except ImportError as error:  # an ONNX precision without the onnx extra: the message names the fix
        if precision not in (None, "fp32", "int8"):
            raise UserError(f"--precision {precision}: {error}") from error
        raise
