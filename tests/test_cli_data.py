"""``ragprune data prepare`` and data/manifest.json, offline: a fixture root and a stand-in ir_datasets."""

from __future__ import annotations

import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest

from ragprune.cli import main
from ragprune.data.manifest import DEFAULT_MANIFEST, load_manifest

FIXTURE = Path(__file__).parent / "fixtures" / "data-manifest"
MANIFEST = str(FIXTURE / "manifest.json")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(FIXTURE / "root", copy)
    return copy


def prepare(root: Path, *extra: str) -> int:
    return main(["data", "prepare", "--manifest", MANIFEST, "--root", str(root), *extra])


def test_a_complete_root_passes(root, capsys):
    assert prepare(root) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "3 of 3 files match the manifest" in captured.err


def test_missing_and_changed_files_say_what_to_place_where(root, capsys):
    (root / "tiny-dl" / "notes.txt").unlink()
    (root / "tiny-dl" / "qrels.txt").write_text("1 0 d1 2\n2 0 d2 0\n")  # same size, other content
    (root / "tiny-dl" / "topics.tsv").write_text("1\tfirst query\n")
    assert prepare(root) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    topics, qrels, notes = lines
    assert topics.startswith(f"tiny: wrong size: {root / 'tiny-dl' / 'topics.tsv'} is 14 bytes, expected 29")
    assert "ragprune data prepare --download" in topics and "'tiny/judged'" in topics
    assert "different content: sha256 of" in qrels and "expected " in qrels
    assert notes == f"tiny: missing: {root / 'tiny-dl' / 'notes.txt'}; copy notes.txt from the fixture"


def test_download_builds_files_with_a_recipe_and_checks_them(root, monkeypatch, capsys):
    """A stand-in ir_datasets (no network): the built files must equal the reference bytes."""
    calls = []

    def load(name):
        calls.append(name)
        query = types.SimpleNamespace
        return types.SimpleNamespace(
            queries_iter=lambda: iter(
                [query(query_id="1", text="first query"), query(query_id="2", text="second query")]
            ),
            qrels_iter=lambda: iter(
                [
                    query(query_id="1", iteration="0", doc_id="d1", relevance=2),
                    query(query_id="2", iteration="0", doc_id="d2", relevance=1),
                ]
            ),
        )

    monkeypatch.setitem(sys.modules, "ir_datasets", types.SimpleNamespace(load=load))
    (root / "tiny-dl" / "topics.tsv").unlink()
    (root / "tiny-dl" / "qrels.txt").unlink()
    (root / "tiny-dl" / "notes.txt").unlink()
    assert prepare(root, "--download") == 1  # notes.txt has no recipe: still missing
    captured = capsys.readouterr()
    assert calls == ["tiny/judged", "tiny/judged"]
    assert captured.out.splitlines() == [
        f"tiny: missing: {root / 'tiny-dl' / 'notes.txt'}; copy notes.txt from the fixture"
    ]
    assert (root / "tiny-dl" / "topics.tsv").read_text() == "1\tfirst query\n2\tsecond query\n"
    assert "2 of 3 files match" in captured.err
    assert not list(root.rglob("*.partial"))


def test_download_without_ir_datasets_names_the_extra(root, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ir_datasets", None)  # import fails
    (root / "tiny-dl" / "topics.tsv").unlink()
    assert prepare(root, "--download") == 2
    assert "pip install 'ragprune[data]'" in capsys.readouterr().err


def test_unknown_data_set_is_named(root, capsys):
    assert prepare(root, "--dataset", "nope") == 2
    assert "unknown data set(s) nope; the manifest lists tiny" in capsys.readouterr().err


def test_the_shipped_manifest_is_complete():
    manifest, files = load_manifest(DEFAULT_MANIFEST)
    for dataset in manifest["datasets"]:
        assert {"name", "path", "use", "source", "version", "licence", "how", "files"} <= set(dataset)
        assert dataset["licence"].strip() and dataset["source"].strip()
    assert all(re.fullmatch(r"[0-9a-f]{64}", entry.sha256) and entry.bytes > 0 for entry in files)
    paths = [entry.path for entry in files]
    assert len(paths) == len(set(paths))
    expected = {"trec-dl/dl19/qrels.txt", "trec-dl/dl20/bm25.top100.trec", "beir/scifact/corpus.jsonl"}
    assert expected <= set(paths)
    assert json.loads(DEFAULT_MANIFEST.read_text())["format"] == 1


def test_the_shipped_manifest_matches_the_shared_data_root(capsys):
    """Every file the manifest lists is in the data root with that checksum (skipped without the data)."""
    from ragprune.data import data_root

    try:
        shared = data_root()
    except FileNotFoundError:
        pytest.skip("no data root here")
    assert main(["data", "prepare", "--root", str(shared)]) == 0, capsys.readouterr().out
