"""The model options shared by every sub-command that runs the model, and loading from them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

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
        type=int,
        default=64,
        help="encoder rows (query + passage chunks) per forward pass (default 64)",
    )


def load_pruner(args: argparse.Namespace) -> RerankPruner:
    from ragprune.cli import UserError
    from ragprune.pipeline import RerankPruner

    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: use a positive number of rows")
    return RerankPruner.load(args.model, device=args.device, batch_size=args.batch_size)
