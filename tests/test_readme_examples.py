"""The examples in README.md run as written.

An example is a fenced code block right after a ``<!-- example:NAME -->`` line. ```python blocks
are executed; in the ``server`` block (bash) the ``ragprune serve`` line is parsed with the real
command-line parser and replaced by a server this test starts on a free 127.0.0.1 port, which is put
in place of 8080 in every example before the rest (``curl``) runs.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from server_helpers import running_server

from ragprune.models.config import CONFIG_NAME
from ragprune.models.registry import DEFAULT_MODEL_DIR
from ragprune.pipeline import RerankPruner

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = re.compile(r"^<!-- example:(?P<name>[\w-]+) -->\n```(?P<lang>\w+)\n(?P<code>.*?)^```$", re.M | re.S)
REQUIRED = {"ranking": "python", "langchain": "python", "llamaindex": "python", "server": "bash"}
REQUIRED |= {"server-client": "python"}
EXAMPLE_ADDRESS = "127.0.0.1:8080"


def examples(path: Path) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for match in EXAMPLE.finditer(path.read_text(encoding="utf-8")):
        assert match["name"] not in found, f"{path}: example {match['name']!r} appears twice"
        found[match["name"]] = (match["lang"], match["code"])
    return found


def run_examples(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ragprune.cli import build_parser
    from ragprune.server import create_app

    found = examples(path)
    missing = {name: lang for name, lang in REQUIRED.items() if found.get(name, ("",))[0] != lang}
    assert not missing, f"{path} lacks the examples {missing} (marker line + fenced block)"
    with running_server(create_app(RerankPruner.load(), model_name="example")) as url:
        address = url.removeprefix("http://")
        for name, (lang, code) in found.items():
            code = code.replace(EXAMPLE_ADDRESS, address)
            if lang == "python":
                exec(compile(code, f"{path.name}:example:{name}", "exec"), {"__name__": f"example_{name}"})
                assert capsys.readouterr().out.strip(), f"example {name} printed nothing"
            elif lang == "bash":
                run_shell_example(name, code, build_parser())


def run_shell_example(name: str, code: str, parser) -> None:
    commands = code.replace("\\\n", " ").splitlines()
    serve = [line for line in commands if line.startswith("ragprune serve")]
    for line in serve:
        parser.parse_args(shlex.split(line, comments=True)[1:])
    rest = "\n".join(line for line in commands if line not in serve)
    if "curl" in rest and shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", rest], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"example {name}: {out.stderr}"
    assert "results" in json.loads(out.stdout), f"example {name} printed {out.stdout!r}"


def test_readme_examples_run_with_the_shipped_model(capsys):
    if not (DEFAULT_MODEL_DIR / CONFIG_NAME).is_file():
        pytest.skip(
            f"the README examples use the shipped model, which is not in {DEFAULT_MODEL_DIR} "
            f"yet (no {CONFIG_NAME})"
        )
    run_examples(ROOT / "README.md", capsys)


def test_readme_examples_run_with_a_stand_in_model(tiny_model_dir, monkeypatch, capsys):
    """The same snippets with the tiny test model standing in for the shipped one: the code runs."""
    load = RerankPruner.load.__func__

    def load_tiny(cls, model=None, **kwargs):
        return load(cls, tiny_model_dir if model is None else model, device="cpu", **kwargs)

    monkeypatch.setattr(RerankPruner, "load", classmethod(load_tiny))
    run_examples(ROOT / "README.md", capsys)
