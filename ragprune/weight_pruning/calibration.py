"""Calibration sets for weight pruning: (query, candidate passages) groups from training splits only.

A :class:`CalibrationGroup` is one query with ``G`` candidate passages (at least one relevant), each with
optional gold-sentence character spans, so the model's own joint loss (rank + token) can be computed on it
(``ragprune.weight_pruning.loss``). Sources (``SOURCES``, all training splits of ``../shared/data``):

* ``scifact-train``: SciFact rationales train, the claim's cited abstract with its rationale sentences;
* ``dl21-biomedical`` / ``dl21-general``: TREC DL21 judged queries (grade >= 2 relevant, judged 0 or
  unjudged BM25 candidates as negatives), split by :func:`looks_biomedical` (a keyword heuristic);
* ``msmarco-triples``: the MS MARCO training triples (query, positive, negative);
* ``nq-train``: NQ-open oracle passages with the answer sentence (silver gold);
* ``wikiqa-train``: WikiQA train paragraphs with their answer sentences;
* ``hotpotqa-train``: HotpotQA distractor train (supporting facts as gold; distractors as negatives).
* ``msmarco-dev``: MS MARCO dev-small queries with BM25 candidates from DL21 / DL22 passages, and DL22's
  own top-100, unlabelled: for recovery distillation only (:func:`msmarco_dev`).

``domain`` = ``scifact-train`` + ``dl21-biomedical``; ``general`` = ``msmarco-triples`` + ``dl21-general`` +
``nq-train`` + ``wikiqa-train`` (the issue's split). Negatives beyond a source's own come from BM25
(``bm25s``) over the source's other passages (same-title passages excluded), so every group holds ``G``
candidates. GAPrune's k-means sampling of a source is :func:`ragprune.weight_pruning.sampling.kmeans_sample`.

Files: a calibration JSONL (``{"query", "source", "passages": [{"text", "title", "relevant",
"gold_spans"}]}`` per line, :meth:`CalibrationSet.save`), a pruning JSONL (the shared schema), a TSV of
MS MARCO triples or WikiQA pairs, or a TREC DL folder, all through :func:`load_source`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ragprune.data import data_root, load_trec_dl, read_passages, read_pruning_jsonl, read_topics
from ragprune.data.pruning import PruningExample

DEFAULT_CANDIDATES = 8
"""Candidates per group: one or two relevant passages and negatives (training uses 16)."""
PREFIX = 50
"""Passages of one group never share their first ``PREFIX`` characters (near-duplicate paragraphs)."""


@dataclass(frozen=True)
class CalibrationPassage:
    """One candidate passage. ``gold_spans``: ``(start, end)`` character spans of its gold sentences in
    ``text`` (empty: every sentence is "drop"); ``None``: no sentence labels (the token loss skips it).
    ``teacher``: an external teacher's score of the (query, passage) pair for recovery distillation
    (:func:`with_teacher_scores`; ``None``: none)."""

    text: str
    title: str = ""
    relevant: bool = False
    gold_spans: tuple[tuple[int, int], ...] | None = ()
    teacher: float | None = None

    def to_dict(self) -> dict[str, Any]:
        spans = None if self.gold_spans is None else [list(span) for span in self.gold_spans]
        data = {"text": self.text, "title": self.title, "relevant": self.relevant, "gold_spans": spans}
        return data if self.teacher is None else {**data, "teacher": self.teacher}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationPassage:
        spans = data.get("gold_spans", [])
        return cls(
            text=str(data["text"]),
            title=str(data.get("title", "")),
            relevant=bool(data.get("relevant", False)),
            gold_spans=None if spans is None else tuple((int(a), int(b)) for a, b in spans),
            teacher=None if data.get("teacher") is None else float(data["teacher"]),
        )


@dataclass(frozen=True)
class CalibrationGroup:
    """A query and its candidates, from the source named ``source``: at least one relevant in a calibration
    set; recovery distillation also takes unlabelled groups (``msmarco-dev``)."""

    query: str
    passages: tuple[CalibrationPassage, ...]
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "source": self.source, "passages": [p.to_dict() for p in self.passages]}

    def texts(self) -> list[str]:
        """The query, then every passage's title (when it has one) and text."""
        return [self.query] + [t for p in self.passages for t in (p.title, p.text) if t]

    def key(self) -> str:
        """Stable key of the group's query and passages, in order (first 16 hex digits of a SHA-1): the
        same sources, ``candidates`` and ``seed`` rebuild the same keys anywhere."""
        parts = [self.query] + [f"{p.title}\x1f{p.text}" for p in self.passages]
        return hashlib.sha1("\x1e".join(parts).encode("utf-8")).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationGroup:
        passages = tuple(CalibrationPassage.from_dict(p) for p in data["passages"])
        return cls(str(data["query"]), passages, str(data.get("source", "")))


@dataclass
class CalibrationSet:
    """Named groups, all with the same number of candidates (a batch of groups is ``[Q, G]``)."""

    name: str
    groups: list[CalibrationGroup] = field(default_factory=list)

    def __post_init__(self) -> None:
        sizes = {len(group.passages) for group in self.groups}
        if len(sizes) > 1:
            raise ValueError(
                f"calibration set {self.name!r} mixes groups of {sorted(sizes)} candidates; "
                "build every group with the same number (candidates=...)"
            )
        for group in self.groups:
            if not any(p.relevant for p in group.passages):
                raise ValueError(
                    f"calibration set {self.name!r}: the group of query {group.query[:60]!r} (source "
                    f"{group.source!r}) has no relevant passage; the rank loss needs one. Unlabelled "
                    "sources such as msmarco-dev serve recovery only (--recover-data)"
                )

    def __len__(self) -> int:
        return len(self.groups)

    def save(self, path: str | Path) -> None:
        """One group per JSON line (readable by :func:`load_source`)."""
        with Path(path).open("w", encoding="utf-8") as handle:
            for group in self.groups:
                handle.write(json.dumps(group.to_dict(), ensure_ascii=False) + "\n")

    def sources(self) -> dict[str, int]:
        """Groups per source name."""
        counts: dict[str, int] = {}
        for group in self.groups:
            counts[group.source] = counts.get(group.source, 0) + 1
        return dict(sorted(counts.items()))


# ---- sources ------------------------------------------------------------------------------------

_BIOMEDICAL = re.compile(
    r"\b(?:disease|symptom|syndrome|cancer|tumou?r|cell|gene|genetic|protein|drug|dose|virus|viral|"
    r"bacteri|infect|blood|heart|cardi|brain|cerebr|patient|clinic|medic|therap|treat|diabet|vitamin|"
    r"hormone|enzyme|insulin|pregnan|prenatal|surg|vaccin|antibiot|immun|chronic|acute|pain|liver|"
    r"kidney|renal|lung|pulmon|bone|muscle|nerve|neur|mutation|dna|rna|molecul|tissue|bladder|thyroid|"
    r"asthma|injection|nutri|metabol|biolog|sprain|medicaid|heals?\b)\w*",
    re.IGNORECASE,
)


def looks_biomedical(query: str) -> bool:
    """Whether a query mentions a biomedical / health word (a keyword heuristic, documented in the report
    of a run; it only splits training queries between the domain and general sets)."""
    return bool(_BIOMEDICAL.search(query))


def scifact_train(
    path: Path | None = None, candidates: int = DEFAULT_CANDIDATES, seed: int = 0
) -> list[CalibrationGroup]:
    """SciFact rationales train: claim -> cited abstract (gold = rationale sentences) + BM25 negatives."""
    path = path or data_root() / "pruning" / "scifact_rationales_train.jsonl"
    return pruning_groups(read_pruning_jsonl(path), "scifact-train", candidates, seed)


def nq_train(
    path: Path | None = None, candidates: int = DEFAULT_CANDIDATES, seed: int = 0
) -> list[CalibrationGroup]:
    """NQ-open oracle train: question -> gold Wikipedia passage (gold = answer sentence) + BM25 negatives."""
    path = path or data_root() / "pruning" / "nq_oracle_silver_train.jsonl"
    return pruning_groups(read_pruning_jsonl(path), "nq-train", candidates, seed)


def hotpotqa_train(
    path: Path | None = None, candidates: int = DEFAULT_CANDIDATES, seed: int = 0
) -> list[CalibrationGroup]:
    """HotpotQA distractor train: supporting paragraphs relevant, distractor paragraphs negatives."""
    path = path or data_root() / "pruning" / "hotpotqa_train_distractor_100.jsonl"
    return pruning_groups(read_pruning_jsonl(path), "hotpotqa-train", candidates, seed)


def pruning_groups(
    examples: Sequence[PruningExample], source: str, candidates: int = DEFAULT_CANDIDATES, seed: int = 0
) -> list[CalibrationGroup]:
    """Groups from pruning examples: contexts with a gold sentence are relevant (gold spans from the data
    set's sentences), the others negatives; BM25 negatives from the other examples' contexts fill the group
    to ``candidates``. Examples without a gold sentence are skipped."""
    from ragprune.evaluation.pruning import context_text

    pool: list[CalibrationPassage] = []
    owner: list[int] = []
    per_example: list[tuple[list[CalibrationPassage], list[CalibrationPassage]]] = []
    for index, example in enumerate(examples):
        relevant: list[CalibrationPassage] = []
        negatives: list[CalibrationPassage] = []
        for context in example.contexts:
            text, spans = context_text(context.sentences)
            if not text.strip():
                continue
            gold = tuple((spans[i].start, spans[i].end) for i in context.gold_sentence_ids)
            passage = CalibrationPassage(text, context.title, bool(gold), gold)
            (relevant if gold else negatives).append(passage)
            pool.append(passage)
            owner.append(index)
        per_example.append((relevant, negatives))
    queries = [example.question for example in examples]
    return _fill_groups(queries, per_example, pool, owner, source, candidates, seed)


def wikiqa_train(
    path: Path | None = None, candidates: int = DEFAULT_CANDIDATES, seed: int = 0
) -> list[CalibrationGroup]:
    """WikiQA train pairs (question TAB sentence TAB label, sentences in paragraph order): each question's
    paragraph is relevant with its label-1 sentences as gold; questions without one are skipped."""
    path = path or data_root() / "pruning" / "wikiqa_train_pairs.tsv"
    return _sentence_pair_groups(path, "wikiqa-train", candidates, seed)


def _sentence_pair_groups(path: Path, source: str, candidates: int, seed: int) -> list[CalibrationGroup]:
    questions: dict[str, list[tuple[str, bool]]] = {}
    with Path(path).open(encoding="utf-8") as handle:
        for lineno, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if len(row) != 3 or row[2].strip() not in ("0", "1"):
                raise ValueError(
                    f"{path}:{lineno}: expected 'question<TAB>sentence<TAB>0|1' (WikiQA pairs), "
                    f"got {row!r:.80}"
                )
            questions.setdefault(row[0], []).append((row[1], row[2].strip() == "1"))
    examples = [
        PruningExample(
            id=str(i),
            source=source,
            question=question,
            answers=[],
            contexts=[_context([s for s, _ in pairs], [j for j, (_, gold) in enumerate(pairs) if gold])],
        )
        for i, (question, pairs) in enumerate(questions.items())
    ]
    return pruning_groups(examples, source, candidates, seed)


def _context(sentences: list[str], gold: list[int]) -> Any:
    from ragprune.data.pruning import PruningContext

    return PruningContext(title="", sentences=sentences, gold_sentence_ids=gold)


def msmarco_triples(
    path: Path | None = None, candidates: int = DEFAULT_CANDIDATES, seed: int = 0
) -> list[CalibrationGroup]:
    """MS MARCO training triples (query TAB positive TAB negative): the positive is relevant without
    sentence labels, the negative and BM25 negatives from the other triples' passages keep nothing."""
    path = path or data_root() / "msmarco" / "triples.toy100.tsv"
    queries, per_query, pool, owner = [], [], [], []
    with Path(path).open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                raise ValueError(f"{path}:{lineno}: expected 'query<TAB>positive<TAB>negative'")
            positive = CalibrationPassage(parts[1], relevant=True, gold_spans=None)
            negative = CalibrationPassage(parts[2])
            queries.append(parts[0])
            per_query.append(([positive], [negative]))
            pool += [positive, negative]
            owner += [len(queries) - 1] * 2
    return _fill_groups(queries, per_query, pool, owner, "msmarco-triples", candidates, seed)


def trec_dl_groups(
    name: str = "dl21",
    keep: Callable[[str], bool] | None = None,
    source: str | None = None,
    candidates: int = DEFAULT_CANDIDATES,
    seed: int = 0,
) -> list[CalibrationGroup]:
    """Judged TREC DL queries (training years only: ``dl21``): passages of grade >= 2 among the BM25
    candidates are relevant (no sentence labels), judged-0 then unjudged candidates (BM25 order) are
    negatives. ``keep(query)`` selects queries. ``ValueError`` for a set without judgements."""
    dl = load_trec_dl(name)
    if not dl.qrels:
        raise ValueError(f"TREC DL set {name!r} has no qrels; calibration groups need judged queries")
    rng = random.Random(f"{seed}:{name}")
    groups = []
    for qid in sorted(dl.run):
        query = dl.topics[qid]
        if keep is not None and not keep(query):
            continue
        judged = dl.qrels.get(qid, {})
        ranked = sorted(dl.run[qid], key=lambda pid: -dl.run[qid][pid])
        relevant = [pid for pid in ranked if judged.get(pid, 0) >= 2][:2]
        if not relevant:
            continue
        negatives = [pid for pid in ranked if judged.get(pid) == 0]
        negatives += [pid for pid in ranked if pid not in judged]
        chosen = negatives[: max(0, candidates - len(relevant))]
        if len(relevant) + len(chosen) < candidates:
            continue
        passages = [CalibrationPassage(dl.passages[pid], relevant=True, gold_spans=None) for pid in relevant]
        passages += [CalibrationPassage(dl.passages[pid]) for pid in chosen]
        rng.shuffle(passages)
        groups.append(CalibrationGroup(query, tuple(passages), source or name))
    return groups


def msmarco_dev(
    candidates: int = DEFAULT_CANDIDATES,
    seed: int = 0,
    pools: Sequence[str] = ("dl21", "dl22-unjudged"),
    depth: int = 100,
) -> list[CalibrationGroup]:
    """Unlabelled web-search groups for recovery distillation: the MS MARCO dev-small queries (a training
    split) with BM25 candidates from the passages of the TREC DL training years ``pools`` (MS MARCO v2),
    and each ``dl22-unjudged`` query with its own BM25 top-100. Half of a group is the BM25 top ranks, the
    other half is sampled from ranks up to ``depth``, so the dense model's scores spread over the group.

    No passage is labelled (``relevant=False``, ``gold_spans=None``): recovery reads only the dense model's
    outputs, and a calibration set (whose rank loss needs a relevant passage) refuses these groups. Left
    out, as in ``training/DATA.md``: DL21's queries (the validation split), any query or passage whose
    normalised text (``ragprune.training.decontam``'s keys) is a DL19 / DL20 topic or candidate passage
    (the evaluation sets; read only to exclude them, so a data root without them excludes nothing).
    ``FileNotFoundError`` naming a missing file.
    """
    from ragprune.retrieval.bm25 import BM25sRetriever
    from ragprune.training.decontam import EVAL_PASSAGES, EVAL_TOPICS, normalise_passage, normalise_query
    from ragprune.types import Document

    root = data_root()
    banned_queries = {
        normalise_query(text)
        for rel in EVAL_TOPICS
        if (root / rel).exists()
        for text in read_topics(root / rel).values()
    }
    banned_texts = {
        normalise_passage(text)
        for rel in EVAL_PASSAGES
        if (root / rel).exists()
        for text in read_passages(root / rel).values()
    }
    texts: dict[str, str] = {}
    own: list[tuple[str, list[str]]] = []
    for name in pools:
        dl = load_trec_dl(root / "trec-dl" / name)
        for text in dl.passages.values():
            key = normalise_passage(text)
            if key not in banned_texts:
                texts.setdefault(key[: PREFIX * 4], text)
        if name != "dl21":  # DL21's judged queries are the ranking validation split
            for qid in sorted(dl.run):
                ranked = sorted(dl.run[qid], key=lambda pid: -dl.run[qid][pid])
                kept = [dl.passages[pid] for pid in ranked]
                own.append((dl.topics[qid], [t for t in kept if normalise_passage(t) not in banned_texts]))
    pool = sorted(texts.values())
    dev_small = root / "msmarco" / "dev-small.queries.tsv"
    if not dev_small.is_file():
        raise FileNotFoundError(
            f"msmarco-dev reads the MS MARCO dev-small queries from {dev_small}, which is missing; point "
            "$RAGPRUNE_DATA at the shared data folder"
        )
    queries = list(read_topics(dev_small).values())
    retriever = BM25sRetriever()
    retriever.index({str(i): Document(str(i), text) for i, text in enumerate(pool)})
    hits = retriever.search({str(i): q for i, q in enumerate(queries)}, k=min(depth, len(pool)))
    lists = [
        (q, [pool[int(pid)] for pid in sorted(hits[str(i)], key=lambda pid: -hits[str(i)][pid])])
        for i, q in enumerate(queries)
    ] + own
    rng = random.Random(f"{seed}:msmarco-dev")
    groups = []
    for query, ranked in lists:  # the pool holds no evaluation passage, nor does a DL22 list
        if normalise_query(query) in banned_queries or len(ranked) < candidates:
            continue
        top = candidates // 2
        chosen = ranked[:top] + rng.sample(ranked[top:depth], candidates - top)
        passages = tuple(CalibrationPassage(text, relevant=False, gold_spans=None) for text in chosen)
        groups.append(CalibrationGroup(query, passages, "msmarco-dev"))
    return groups


def _fill_groups(
    queries: list[str],
    per_query: list[tuple[list[CalibrationPassage], list[CalibrationPassage]]],
    pool: list[CalibrationPassage],
    owner: list[int],
    source: str,
    candidates: int,
    seed: int,
) -> list[CalibrationGroup]:
    """Groups of exactly ``candidates`` passages: up to two relevant, the query's own negatives, then the
    BM25 best of the pool's passages from other queries, then random ones (never the title of a relevant
    passage, never two passages that start with the same ``PREFIX`` characters)."""
    from ragprune.retrieval.bm25 import BM25sRetriever
    from ragprune.types import Document

    retriever = BM25sRetriever()
    retriever.index({str(i): Document(str(i), p.text, p.title) for i, p in enumerate(pool)})
    wanted = {
        str(q): queries[q] for q, (relevant, _) in enumerate(per_query) if relevant and queries[q].strip()
    }
    hits = retriever.search(wanted, k=min(len(pool), 4 * candidates)) if wanted else {}
    rng = random.Random(f"{seed}:{source}")
    groups = []
    for q, (relevant, own_negatives) in enumerate(per_query):
        if str(q) not in wanted:
            continue
        chosen = relevant[:2] + own_negatives[: candidates - min(2, len(relevant))]
        titles = {p.title for p in relevant if p.title}
        texts = {p.text[:PREFIX] for p in chosen}
        for pid in sorted(hits[str(q)], key=lambda pid: -hits[str(q)][pid]):
            if len(chosen) >= candidates:
                break
            other = pool[int(pid)]
            if (
                owner[int(pid)] == q
                or other.text[:PREFIX] in texts
                or (other.title and other.title in titles)
            ):
                continue
            chosen.append(CalibrationPassage(other.text, other.title, False, ()))
            texts.add(other.text[:PREFIX])
        fill = [i for i in rng.sample(range(len(pool)), min(len(pool), 4 * candidates)) if owner[i] != q]
        for i in fill:
            if len(chosen) >= candidates:
                break
            if pool[i].text[:PREFIX] not in texts and not (pool[i].title and pool[i].title in titles):
                chosen.append(CalibrationPassage(pool[i].text, pool[i].title, False, ()))
                texts.add(pool[i].text[:PREFIX])
        if len(chosen) < candidates:
            continue
        rng.shuffle(chosen)
        groups.append(CalibrationGroup(queries[q], tuple(chosen), source))
    return groups


SOURCES: dict[str, Callable[[int, int], list[CalibrationGroup]]] = {
    "scifact-train": lambda g, s: scifact_train(candidates=g, seed=s),
    "dl21-biomedical": lambda g, s: trec_dl_groups("dl21", looks_biomedical, "dl21-biomedical", g, s),
    "dl21-general": lambda g, s: trec_dl_groups(
        "dl21", lambda q: not looks_biomedical(q), "dl21-general", g, s
    ),
    "msmarco-triples": lambda g, s: msmarco_triples(candidates=g, seed=s),
    "nq-train": lambda g, s: nq_train(candidates=g, seed=s),
    "wikiqa-train": lambda g, s: wikiqa_train(candidates=g, seed=s),
    "hotpotqa-train": lambda g, s: hotpotqa_train(candidates=g, seed=s),
    "msmarco-dev": lambda g, s: msmarco_dev(candidates=g, seed=s),
}
"""Named sources (training splits under the data root): name -> ``builder(candidates, seed)``."""

RECIPES: dict[str, tuple[str, ...]] = {
    "domain": ("scifact-train", "dl21-biomedical"),
    "general": ("msmarco-triples", "dl21-general", "nq-train", "wikiqa-train"),
}
"""The issue's domain (biomedical) and general calibration pools."""


def load_source(
    spec: str | Path, candidates: int = DEFAULT_CANDIDATES, seed: int = 0
) -> list[CalibrationGroup]:
    """Every group of one source: a recipe (``domain``, ``general``), a name in ``SOURCES``, or a file /
    folder (calibration JSONL, pruning JSONL, triples or WikiQA-pairs TSV, TREC DL folder with qrels).

    Raises ``FileNotFoundError`` for a path that does not exist and ``ValueError`` for a file of no known
    format or groups of another size than ``candidates``.
    """
    name = str(spec)
    if name in RECIPES:
        return [group for part in RECIPES[name] for group in load_source(part, candidates, seed)]
    if name in SOURCES:
        return SOURCES[name](candidates, seed)
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"calibration source {name!r} is neither a file nor one of {sorted(RECIPES) + sorted(SOURCES)}"
        )
    if path.is_dir():
        return trec_dl_groups(str(path), source=path.name, candidates=candidates, seed=seed)
    first = _first_line(path)
    if path.suffix == ".jsonl" or first.startswith("{"):
        record = json.loads(first) if first else {}
        if "passages" in record:
            groups = [CalibrationGroup.from_dict(json.loads(line)) for line in _lines(path)]
            wrong = sorted({len(g.passages) for g in groups} - {candidates})
            if wrong:
                raise ValueError(
                    f"{path}: groups of {wrong} candidates; this run uses {candidates} (--candidates)"
                )
            return groups
        if "contexts" in record:
            return pruning_groups(read_pruning_jsonl(path), path.stem, candidates, seed)
        raise ValueError(f"{path}: JSON lines with neither 'passages' (calibration) nor 'contexts' (pruning)")
    columns = first.split("\t")
    if len(columns) == 3 and columns[2].strip() in ("0", "1"):
        return _sentence_pair_groups(path, path.stem, candidates, seed)
    if len(columns) == 3:
        return msmarco_triples(path, candidates, seed)
    raise ValueError(
        f"{path}: unknown calibration format; use a calibration or pruning JSONL, a 'query<TAB>positive"
        "<TAB>negative' or 'question<TAB>sentence<TAB>0|1' TSV, or a TREC DL folder"
    )


def write_teacher_scores(
    path: str | Path, groups: Sequence[CalibrationGroup], scores: Sequence[Sequence[float]]
) -> None:
    """Write an external teacher's scores of ``groups`` (``scores[i][j]``: group i, passage j; finite) as a
    gzipped TSV, one line per group: ``key<TAB>score,score,...`` (:meth:`CalibrationGroup.key`). The file
    is small (no text), so it travels where the groups are rebuilt from the data folder. Written to
    ``path + ".tmp"`` and renamed, so an interrupted run leaves no truncated file. ``ValueError`` for a row
    of another length than its group or a score that is not finite."""
    path = Path(path)
    partial = path.with_name(path.name + ".tmp")
    try:
        with gzip.open(partial, "wt", encoding="utf-8") as handle:
            for group, row in zip(groups, scores, strict=True):
                if len(row) != len(group.passages):
                    raise ValueError(f"{len(row)} scores for a group of {len(group.passages)} passages")
                if not all(math.isfinite(x) for x in row):
                    raise ValueError(f"scores of the group of query {group.query[:50]!r} not all finite")
                handle.write(f"{group.key()}\t{','.join(f'{float(x):.5g}' for x in row)}\n")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)


def with_teacher_scores(
    groups: Sequence[CalibrationGroup], path: str | Path
) -> tuple[list[CalibrationGroup], int]:
    """``groups`` with each passage's ``teacher`` score read from ``path`` (:func:`write_teacher_scores`),
    and how many groups the file covered (groups it does not hold keep ``teacher=None``).

    Raises ``FileNotFoundError`` for a missing file and ``DataFormatError`` (a ``ValueError``) for a line
    that is not ``key<TAB>finite,scores,...``, a file that is not gzip, or a file that covers none of the
    groups (it was written for other sources, ``candidates`` or ``seed``)."""
    from ragprune.data.errors import DataFormatError
    from ragprune.data.files import numbered_lines

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no teacher-score file (write one with training/recovery_teacher.py)"
        )
    table: dict[str, list[float]] = {}
    for number, line in numbered_lines(path, "teacher scores"):
        key, _, values = line.partition("\t")
        try:
            row = [float(x) for x in values.split(",")]
        except ValueError:
            row = []
        if not key or not row or not all(math.isfinite(x) for x in row):
            raise DataFormatError.at(
                path,
                number,
                "expected 'key<TAB>score,score,...' with finite scores",
                "rewrite the file with training/recovery_teacher.py",
            )
        table[key] = row
    out, covered = [], 0
    for group in groups:
        scores = table.get(group.key())
        if scores is None or len(scores) != len(group.passages):
            out.append(group)
            continue
        covered += 1
        passages = tuple(replace(p, teacher=x) for p, x in zip(group.passages, scores, strict=True))
        out.append(CalibrationGroup(group.query, passages, group.source))
    if groups and not covered:
        raise DataFormatError.at(
            path,
            None,
            f"scores none of these {len(groups)} groups: it was written for other sources, "
            "--candidates or --seed",
            "rebuild it with the same ones",
        )
    return out, covered


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8") as handle:
        return handle.readline().strip()


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
