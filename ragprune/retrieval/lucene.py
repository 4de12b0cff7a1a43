"""BM25 with Lucene through Pyserini (needs Java 17): the reference implementation of published BM25 runs."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragprune.retrieval.base import Retriever, Run, retrieval_text
from ragprune.types import Document


class LuceneRetriever(Retriever):
    """Pyserini's BM25 (Lucene English analyzer: Porter stemming, stopwords) with its defaults k1=0.9, b=0.4.

    The corpus is written as a Pyserini ``JsonCollection`` (``contents`` = title + " " + text, the BEIR
    "flat" field) and indexed by Pyserini's indexer in a subprocess. The index goes to ``index_dir``
    if given (kept), else to a temporary directory removed with the retriever.
    """

    name = "lucene"

    def __init__(
        self, k1: float = 0.9, b: float = 0.4, index_dir: str | Path | None = None, threads: int = 1
    ) -> None:
        super().__init__()
        self.k1, self.b, self.threads = k1, b, threads
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        if index_dir:
            self.index_dir = Path(index_dir)
        else:
            self._temporary = tempfile.TemporaryDirectory(prefix="ragprune-lucene-")
            self.index_dir = Path(self._temporary.name) / "index"
        self._searcher: Any = None  # Anserini's SimpleSearcher (a Java object through pyjnius), once opened

    def _build(self, corpus: Mapping[str, Document]) -> None:
        self.close()
        with tempfile.TemporaryDirectory(prefix="ragprune-jsoncollection-") as collection:
            with (Path(collection) / "docs.jsonl").open("w", encoding="utf-8") as handle:
                for doc_id, doc in corpus.items():
                    handle.write(json.dumps({"id": doc_id, "contents": retrieval_text(doc)}) + "\n")
            command = [
                sys.executable, "-m", "pyserini.index.lucene",
                "--collection", "JsonCollection",
                "--input", collection,
                "--index", str(self.index_dir),
                "--generator", "DefaultLuceneDocumentGenerator",
                "--threads", str(self.threads),
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"Pyserini indexing failed (exit {done.returncode}); is Java 17 installed? "
                f"Last output: {(done.stderr or done.stdout).strip()[-500:]}"
            )

    def close(self) -> None:
        """Release the Lucene searcher (the index directory stays until the retriever is dropped)."""
        if self._searcher is not None:
            self._searcher.close()
            self._searcher = None

    def _search(self, queries: Mapping[str, str], k: int) -> Run:
        # Anserini's SimpleSearcher, the Java class behind pyserini's LuceneSearcher, reached through
        # pyserini.pyclass: importing pyserini.search.lucene would also load torch, transformers and an
        # OpenAI client (about 20 s) that BM25 never uses.
        from pyserini.pyclass import JArrayList, autoclass

        if self._searcher is None:
            self._searcher = autoclass("io.anserini.search.SimpleSearcher")(str(self.index_dir))
            self._searcher.set_bm25(float(self.k1), float(self.b))
        qids = list(queries)
        texts, ids = JArrayList(), JArrayList()
        for qid in qids:
            texts.add(queries[qid])
            ids.add(qid)
        results = self._searcher.batch_search(texts, ids, int(k), int(self.threads))
        hits = {entry.getKey(): entry.getValue() for entry in results.entrySet().toArray()}
        return {qid: {hit.docid: float(hit.score) for hit in hits.get(qid, [])} for qid in qids}
