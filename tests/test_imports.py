"""``import ragprune`` and ``ragprune --help`` must not pull in the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "torch",
    "transformers",
    "sentence_transformers",
    "pyserini",
    "langchain_core",
    "llama_index",
    "triton",
)


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_import_ragprune_is_light():
    loaded = _modules_after("import ragprune")
    assert not [name for name in HEAVY if name in loaded]


def test_cli_help_is_light():
    loaded = _modules_after("from ragprune.cli import build_parser\nbuild_parser().format_help()")
    assert not [name for name in HEAVY if name in loaded]
