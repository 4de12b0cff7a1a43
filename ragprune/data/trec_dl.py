"""TREC Deep Learning passage sets as laid out under ``<data root>/trec-dl/<name>/``.

Each directory holds ``topics.tsv``, ``bm25.top100.trec`` (the first-stage run), ``passages.tsv.gz``
(the text of every candidate) and, for judged years, ``qrels.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ragprune.data.errors import DataMismatchError
from ragprune.data.paths import resolve_dataset_dir
from ragprune.data.trec import Qrels, Run, ranked_items, read_passages, read_qrels, read_run, read_topics
from ragprune.types import Document, Query

TOPICS_FILE = "topics.tsv"
QRELS_FILE = "qrels.txt"
RUN_FILE = "bm25.top100.trec"
PASSAGES_FILE = "passages.tsv.gz"


@dataclass(frozen=True)
class TrecDLSet:
    """One TREC DL year: topics, judgements (empty when unjudged), first-stage run and passage texts."""

    name: str
    topics: dict[str, str]
    qrels: Qrels
    run: Run
    passages: dict[str, str]

    def candidates(self, depth: int | None = None) -> tuple[list[Query], list[list[Document]]]:
        """The run's queries (query id order) and each one's first-stage documents, best first, cut at
        ``depth``: the input of ``RerankPruner.process`` (the scores stay in ``run``)."""
        qids = sorted(self.run)
        documents = [
            [Document(pid, self.passages[pid]) for pid, _ in ranked_items(self.run[qid])[:depth]]
            for qid in qids
        ]
        return [Query(qid, self.topics[qid]) for qid in qids], documents


def load_trec_dl(name_or_path: str | Path, run_file: str = RUN_FILE) -> TrecDLSet:
    """Load a TREC DL set by name (``"dl19"`` -> ``<data root>/trec-dl/dl19``) or directory path.

    Checks that every run query has a topic and every run passage has a text, so later stages never
    meet an unknown id.
    """
    directory = resolve_dataset_dir(name_or_path, "trec-dl")
    topics_path, qrels_path = directory / TOPICS_FILE, directory / QRELS_FILE
    run_path, passages_path = directory / run_file, directory / PASSAGES_FILE
    topics = read_topics(topics_path)
    qrels = read_qrels(qrels_path) if qrels_path.exists() else {}
    run = read_run(run_path)
    passages = read_passages(passages_path)
    _require_known({qid for qid in run if qid not in topics}, f"query ids in {run_path}", str(topics_path))
    unknown_docs = {pid for ranked in run.values() for pid in ranked if pid not in passages}
    _require_known(unknown_docs, f"passage ids in {run_path}", str(passages_path))
    return TrecDLSet(directory.name, topics, qrels, run, passages)


def _require_known(missing: set[str], what: str, where: str) -> None:
    if missing:
        shown = ", ".join(sorted(missing)[:5])
        raise DataMismatchError(
            f"{len(missing)} {what} are missing from {where} (e.g. {shown}); "
            "use the run, topics and passages of the same set"
        )
