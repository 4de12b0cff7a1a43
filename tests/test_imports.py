"""``import ragprune``, ``import ragprune.integrations`` and ``ragprune --help`` load no heavy library."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = (
    "torch",
    "transformers",
    "sentence_transformers",
    "pyserini",
    "langchain_core",
    "llama_index",
    "fastapi",
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


@pytest.mark.parametrize(
    "code",
    [
        "import ragprune",
        "import ragprune.integrations",
        "from ragprune.cli import build_parser\nbuild_parser().format_help()",
    ],
    ids=["import-ragprune", "import-integrations", "cli-help"],
)
def test_stays_light(code: str) -> None:
    loaded = _modules_after(code)
    assert not [name for name in HEAVY if name in loaded]
