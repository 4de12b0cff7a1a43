"""``ragprune data prepare``: check a data root against ``data/manifest.json``; build what can be built."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "data",
        help="check (and build) the data sets evaluation and training read",
        description="The data sets in data/manifest.json (source, version, licence, sha256 of each file).",
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prepare = actions.add_parser(
        "prepare",
        help="check a data root against the manifest; --download rebuilds missing files with ir_datasets",
        description="Check every file of the manifest under the data root (size and sha256) and say, for "
        "each missing or different file, exactly what to place where. With --download, files that have "
        "a build recipe are first rebuilt from public sources with ir_datasets (needs a network and "
        "pip install 'ragprune[data]'), then checked like the others. Exit status 0 when every file "
        "matches, 1 otherwise.",
    )
    prepare.add_argument(
        "--root", default=None, help="the data root (default: $RAGPRUNE_DATA, else ../shared/data)"
    )
    prepare.add_argument(
        "--manifest", default=None, help="manifest file (default: the repository's data/manifest.json)"
    )
    prepare.add_argument(
        "--dataset", action="append", default=None, metavar="NAME", help="only this data set (repeatable)"
    )
    prepare.add_argument(
        "--download",
        action="store_true",
        help="build missing files that have a recipe from public sources (ir_datasets; uses the network)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ragprune.cli import UserError
    from ragprune.data import manifest as data_manifest

    _, files = data_manifest.load_manifest(args.manifest or data_manifest.DEFAULT_MANIFEST)
    if args.dataset:
        unknown = sorted(set(args.dataset) - {entry.dataset for entry in files})
        if unknown:
            names = ", ".join(sorted({entry.dataset for entry in files}))
            raise UserError(f"unknown data set(s) {', '.join(unknown)}; the manifest lists {names}")
        files = [entry for entry in files if entry.dataset in args.dataset]
    root = Path(args.root).expanduser() if args.root else _default_root()
    if args.download:
        for status in data_manifest.check(root, files):
            entry, recipe = status.entry, status.entry.build
            if status.ok or not recipe:
                continue
            print(f"building {root / entry.path} from ir_datasets {recipe['dataset']!r}", file=sys.stderr)
            try:
                data_manifest.build(root, entry)
            except ImportError:
                raise UserError("--download needs ir_datasets: pip install 'ragprune[data]'") from None
    statuses = data_manifest.check(root, files)
    bad = [status for status in statuses if not status.ok]
    for status in bad:
        print(f"{status.entry.dataset}: {status.describe(root)}")
    print(
        f"{len(statuses) - len(bad)} of {len(statuses)} files match the manifest under {root}",
        file=sys.stderr,
    )
    return 1 if bad else 0


def _default_root():
    """$RAGPRUNE_DATA or ../shared/data, even when it does not exist yet (prepare creates it)."""
    import os
    from pathlib import Path

    from ragprune.data.paths import ENV_VAR, data_root

    try:
        return data_root()
    except FileNotFoundError:
        return Path(os.environ.get(ENV_VAR) or Path("..") / "shared" / "data").expanduser()
