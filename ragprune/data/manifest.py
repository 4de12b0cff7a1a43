"""The data manifest (``data/manifest.json``): every data set evaluation and training read, checked and built.

Each data set entry names its folder under the data root, its use (evaluation / training), source,
version and licence; each file its size and sha256 and either a ``build`` recipe (a public loader that
can rebuild it) or ``how`` (what to place there by hand). :func:`check` compares a data root with the
manifest; :func:`build` rebuilds missing files whose recipe names an ``ir_datasets`` data set (needs the
``data`` extra and a network; ir_datasets caches its downloads under ``$IR_DATASETS_HOME``) and then
checks them like any other file, so a rebuild that differs from the reference copy is reported, never
passed off as the same data.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragprune.data.errors import DataFormatError

MANIFEST_FORMAT = 1
DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "data" / "manifest.json"


@dataclass(frozen=True)
class FileEntry:
    dataset: str
    path: str  # relative to the data root, '/'-separated
    sha256: str
    bytes: int
    build: dict[str, str] | None
    how: str


@dataclass(frozen=True)
class FileStatus:
    entry: FileEntry
    state: str  # "ok", "missing", "size" (wrong size) or "sha256" (same size, other content)
    actual_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def describe(self, root: Path) -> str:
        """One line: what is wrong with the file and how to fix it."""
        target = root / self.entry.path
        if self.state == "missing":
            problem = f"missing: {target}"
        elif self.state == "size":
            problem = f"wrong size: {target} is {target.stat().st_size} bytes, expected {self.entry.bytes}"
        else:
            problem = (
                f"different content: sha256 of {target} is {self.actual_sha256}, expected {self.entry.sha256}"
            )
        return f"{problem}; {fix_for(self.entry)}"


def fix_for(entry: FileEntry) -> str:
    """What to do to get this file."""
    if entry.build:
        recipe = f"ir_datasets {entry.build['dataset']!r} ({entry.build['part']})"
        return f"run `ragprune data prepare --download` (builds it from {recipe}) or {entry.how}"
    return entry.how


def load_manifest(path: str | Path = DEFAULT_MANIFEST) -> tuple[dict[str, Any], list[FileEntry]]:
    """The manifest's data set records and its files, validated."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data manifest not found: {path}; pass --manifest data/manifest.json")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DataFormatError.at(
            path, None, f"manifest format {manifest.get('format')!r}", f"use format {MANIFEST_FORMAT}"
        )
    files = []
    for dataset in manifest["datasets"]:
        for record in dataset["files"]:
            files.append(
                FileEntry(
                    dataset=dataset["name"],
                    path=f"{dataset['path']}/{record['path']}",
                    sha256=record["sha256"],
                    bytes=record["bytes"],
                    build=record.get("build"),
                    how=record.get("how") or dataset["how"],
                )
            )
    return manifest, files


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(root: Path, files: Iterable[FileEntry]) -> list[FileStatus]:
    """Each file's state under ``root`` (sizes first, so a wrong file is found without hashing it)."""
    statuses = []
    for entry in files:
        target = root / entry.path
        if not target.is_file():
            statuses.append(FileStatus(entry, "missing"))
        elif target.stat().st_size != entry.bytes:
            statuses.append(FileStatus(entry, "size"))
        else:
            actual = sha256_of(target)
            statuses.append(FileStatus(entry, "ok" if actual == entry.sha256 else "sha256", actual))
    return statuses


def build(root: Path, entry: FileEntry) -> Path:
    """Write ``entry``'s file under ``root`` from its ir_datasets recipe; returns its path.

    Raises ``ValueError`` for a file without a recipe and ``ImportError`` without ir_datasets.
    """
    if not entry.build:
        raise ValueError(f"{entry.path} has no build recipe; {entry.how}")
    import ir_datasets  # optional: pip install 'ragprune[data]'

    dataset = ir_datasets.load(entry.build["dataset"])
    target = root / entry.path
    target.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(_WRITERS[entry.build["part"]](dataset, root, entry)).encode("utf-8")
    if target.suffix == ".gz":
        data = gzip.compress(data, mtime=0)  # no time stamp: the same content gives the same bytes
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    partial.replace(target)  # never leave a half-written file under the final name
    return target


def _queries_tsv(dataset: Any, root: Path, entry: FileEntry) -> Iterator[str]:
    for query in dataset.queries_iter():
        yield f"{query.query_id}\t{query.text}\n"


def _qrels_trec(dataset: Any, root: Path, entry: FileEntry) -> Iterator[str]:
    for qrel in dataset.qrels_iter():
        yield f"{qrel.query_id} {qrel.iteration} {qrel.doc_id} {qrel.relevance}\n"


def _passages_of_run(dataset: Any, root: Path, entry: FileEntry) -> Iterator[str]:
    """The texts of every document of the run file named in the recipe, in first-seen order."""
    from ragprune.data.trec import read_run

    if not entry.build:
        raise ValueError(f"{entry.path} has no build recipe; {entry.how}")
    run = read_run(root / Path(entry.path).parent / entry.build["run"])
    doc_ids = list(dict.fromkeys(doc_id for ranked in run.values() for doc_id in ranked))
    docs = dataset.docs_store().get_many(doc_ids)
    for doc_id in doc_ids:
        yield f"{doc_id}\t{docs[doc_id].text}\n"


def _beir_corpus(dataset: Any, root: Path, entry: FileEntry) -> Iterator[str]:
    for doc in dataset.docs_iter():
        yield json.dumps({"_id": doc.doc_id, "title": doc.title, "text": doc.text}) + "\n"


def _beir_queries(dataset: Any, root: Path, entry: FileEntry) -> Iterator[str]:
    for query in dataset.queries_iter():
        yield json.dumps({"_id": query.query_id, "text": query.text}) + "\n"


def _beir_qrels(dataset: Any, root: Path, entry: FileEntry) -> Iterator[str]:
    yield "query-id\tcorpus-id\tscore\n"
    for qrel in dataset.qrels_iter():
        yield f"{qrel.query_id}\t{qrel.doc_id}\t{qrel.relevance}\n"


_WRITERS: dict[str, Callable[[Any, Path, FileEntry], Iterator[str]]] = {
    "queries_tsv": _queries_tsv,
    "qrels_trec": _qrels_trec,
    "passages_of_run": _passages_of_run,
    "beir_corpus": _beir_corpus,
    "beir_queries": _beir_queries,
    "beir_qrels": _beir_qrels,
}
