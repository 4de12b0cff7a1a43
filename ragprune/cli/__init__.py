"""The ``ragprune`` command line.

Each sub-command lives in its own module exposing ``add_parser(subparsers)`` and ``run(args)``;
those modules import only ``argparse`` at top level so that ``ragprune --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Sub-command modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "rerank",
    "prune",
    "eval",
    "retrieve",
    "serve",
    "data",
    "compress",
)


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    from ragprune import __version__

    parser = argparse.ArgumentParser(
        prog="ragprune",
        description="Rerank retrieved passages and prune them to the sentences that answer the query.",
    )
    parser.add_argument("--version", action="version", version=f"ragprune {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"ragprune.cli.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stderr.close()
        return 0
    except (UserError, OSError, ValueError) as error:  # OSError: missing files, permissions, ports
        print(f"ragprune {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
