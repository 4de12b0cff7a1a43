"""Build ragprune's distillation training data: passage pool, query groups, teacher scores, sentence labels.

Run from the repository root (after ``python training/fetch_teacher.py``)::

    .venv/bin/python training/build_data.py --out .cache/train

Steps, each logged to ``<out>/log.txt``; every encoding is cached under ``--cache``
(``.cache/teacher-emb``, ~550 MB, outside ``--out``) and reused, so a killed or repeated run only redoes
what is missing:

1. Passage pool from training-only sources (DL21/DL22 passages, NQ-oracle, HotpotQA/SciFact/WikiQA/TrecQA
   train, the MS MARCO toy triples), deduplicated by exact text; ``pid`` is a hash of the text.
2. Training queries with the labels and gold sentences their source gives. DL21's judged queries form a
   separate validation file; a seeded share of the gold-sentence queries is held out for tuning pruning.
3. Candidates: BM25 top-k from the pool plus the query's own labelled passages.
4. Teacher scores: MiniLM and MPNet cosine and BM25; ensembles are compared on DL21 and the best one is
   stored as ``teacher``.
5. Sentences: the project splitter's spans for every passage, gold sentences as character spans, and
   per-sentence MiniLM (and MPNet) cosine for the top candidates as silver evidence.
6. Gzip JSON-lines outputs and ``stats.json``.

The recipe and the reasons for each choice are in ``training/DATA.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ragprune.data import (
    PruningExample,
    TrecDLSet,
    data_root,
    load_trec_dl,
    read_pruning_jsonl,
    read_topics,
)
from ragprune.data.files import numbered_lines
from ragprune.evaluation import paired_test
from ragprune.evaluation.pruning import context_text
from ragprune.text import split_sentences
from ragprune.training.decontam import (  # noqa: F401  (EVAL_*: the evaluation sets, named here too)
    EVAL_PRUNING,
    EVAL_TOPICS,
    eval_query_texts,
    normalise_query,
)
from ragprune.training.ensembles import Spec, combine
from ragprune.training.files import r3, write_jsonl_gz
from ragprune.training.labels import GOLD_SHARE, covered_share
from ragprune.training.synthetic import AGREEMENT_TOP_K, EvalOverlap, read_records, teacher_agreement
from ragprune.training.validation import RankingValidator, ValidationQuery
from ragprune.types import Span

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

LOG = logging.getLogger("build_data")

GOLD_SOURCES = ("nq", "hotpotqa", "scifact", "wikiqa", "trecqa")
# Sentence-source contexts longer than this are cut into consecutive sentence windows, so that each fits
# the 256-token encoder window next to its query (~180-200 tokens) and no gold sentence lies beyond it.
WINDOW_CHARS = 800
# Whether a source's context as a whole answers its question (then a window without gold is unlabelled).
RELEVANT_CONTEXT: dict[str, Callable[[list[int]], bool]] = {
    "nq": lambda gold: True,  # the annotated gold passage, even where the answer heuristic found no sentence
    "scifact": lambda gold: True,  # the abstract the claim cites
    "hotpotqa": lambda gold: bool(gold),  # supporting paragraph vs distractor
    "wikiqa": lambda gold: bool(gold),  # the paragraph answers iff a sentence does
    "trecqa": lambda gold: False,  # a list of unrelated candidate sentences: only gold windows answer
}


# --------------------------------------------------------------------------------------------------
# Pool and query records
# --------------------------------------------------------------------------------------------------


@dataclass
class Passage:
    """A pool passage: its ``pid`` (hash of the text), text, first source and every original id."""

    pid: str
    text: str
    source: str
    ids: list[str] = field(default_factory=list)


@dataclass
class Group:
    """One query with its candidate passages (pids) and what its source says about them."""

    qid: str
    query: str
    source: str
    labels: dict[str, int] = field(default_factory=dict)  # pid -> relevance given by the source
    gold: dict[str, list[Span]] = field(default_factory=dict)  # pid -> gold sentence spans
    candidates: list[str] = field(default_factory=list)
    # Validation runs only, parallel to ``candidates``: the run's doc ids and scores, and graded qrels by
    # doc id. Kept per doc id because the run holds exact-duplicate texts that are judged differently.
    docnos: list[str] = field(default_factory=list)
    bm25_given: list[float] = field(default_factory=list)
    qrels: dict[str, int] = field(default_factory=dict)


class Pool:
    """Passages deduplicated by exact text; the pid is a hash of the text, so it is stable across builds."""

    def __init__(self) -> None:
        self.passages: dict[str, Passage] = {}

    @staticmethod
    def pid_of(text: str) -> str:
        """``p`` + the first 11 hex digits of the text's SHA-1."""
        return "p" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:11]

    def add(self, text: str, source: str, original_id: str) -> str:
        """Add a text (or a new original id of a known text); returns its pid. ``RuntimeError`` on a hash
        collision between two texts."""
        pid = self.pid_of(text)
        passage = self.passages.get(pid)
        if passage is None:
            passage = self.passages[pid] = Passage(pid, text, source)
        elif passage.text != text:
            raise RuntimeError(f"pid collision between two texts ({pid}); lengthen the hash")
        passage.ids.append(original_id)
        return pid


def add_labelled(group: Group, pid: str, label: int, gold: list[Span] | None) -> None:
    """Record a source-given label (and gold spans) for a passage of *group*, merging duplicates."""
    group.labels[pid] = max(label, group.labels.get(pid, label))
    if gold:
        group.gold[pid] = sorted(set(group.gold.get(pid, [])) | set(gold))


def window_text(sentences: list[str]) -> tuple[str, list[Span | None]]:
    """Passage text of consecutive dataset sentences, and each sentence's span in it (``None`` if empty).

    Joined exactly as the pruning evaluation joins a context (:func:`context_text`), then stripped of
    outer whitespace (a window may start with HotpotQA's leading space or end with SciFact's newline).
    """
    text, spans = context_text(sentences)
    shift = len(text) - len(text.lstrip())
    return text.strip(), [Span(s.start - shift, s.end - shift) if len(s) else None for s in spans]


def gold_spans(spans: list[Span | None], gold_ids: Iterable[int]) -> list[Span]:
    """The spans of the gold sentences ``gold_ids`` (empty sentences skipped), sorted."""
    return sorted(spans[i] for i in gold_ids if spans[i] is not None)


# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------


def add_trec_passages(pool: Pool, dl: TrecDLSet, source: str) -> None:
    """Add every passage of a TREC DL set to the pool, in docno order."""
    for docno, text in sorted(dl.passages.items()):
        pool.add(text, source, docno)


def add_context(
    pool: Pool, group: Group, sentences: list[str], gold_ids: list[int], original_id: str
) -> None:
    """Add one source context to the pool, cut into sentence windows, and label each window for *group*.

    A window holding gold sentences is labelled 1 with their spans. Otherwise: 0 if the context does not
    answer (HotpotQA distractor, TrecQA window, unanswerable WikiQA paragraph); 1 if the context answers
    but names no gold sentence and fits one window (NQ passages where the answer heuristic failed); no
    label for the other windows of an answering context (part of a relevant document, no gold in them).
    """
    windows = sentence_windows(sentences)
    relevant = RELEVANT_CONTEXT[group.source](gold_ids)
    for window_no, window in enumerate(windows):
        text, spans = window_text([sentences[i] for i in window])
        if not text:
            continue
        pid = pool.add(text, group.source, f"{original_id}.{window_no}")
        window_gold = [i - window.start for i in gold_ids if i in window]
        if window_gold:
            add_labelled(group, pid, 1, gold_spans(spans, window_gold))
        elif not relevant:
            add_labelled(group, pid, 0, None)
        elif not gold_ids and len(windows) == 1:
            add_labelled(group, pid, 1, None)


def sentence_windows(sentences: list[str], max_chars: int = WINDOW_CHARS) -> list[range]:
    """Consecutive sentence windows of at most *max_chars* characters (a longer sentence stands alone)."""
    windows, start, size = [], 0, 0
    for i, sentence in enumerate(sentences):
        if i > start and size + len(sentence) > max_chars:
            windows.append(range(start, i))
            start, size = i, 0
        size += len(sentence) + 1
    windows.append(range(start, len(sentences)))
    return windows


def pruning_groups(pool: Pool, path: Path, source: str, key: Callable[[PruningExample], str]) -> list[Group]:
    """Groups from a pruning JSONL file (see :func:`add_context` for the windows and labels).

    Examples that share ``key`` (SciFact: one claim citing several abstracts) form one group.
    """
    groups: dict[str, Group] = {}
    for example in read_pruning_jsonl(path):
        qid = f"{source}:{key(example)}"
        group = groups.setdefault(qid, Group(qid, example.question, source))
        for index, context in enumerate(example.contexts):
            add_context(pool, group, context.sentences, context.gold_sentence_ids, f"{example.id}#{index}")
    return list(groups.values())


def wikiqa_groups(pool: Pool, path: Path) -> list[Group]:
    """WikiQA train: ``question<TAB>sentence<TAB>label`` rows; a question's rows, in file order, are the
    sentences of its Wikipedia summary paragraph; label 1 marks an answer sentence."""
    rows: dict[str, list[tuple[str, int]]] = {}
    for lineno, line in numbered_lines(path, "WikiQA pairs"):
        fields = line.split("\t")
        if len(fields) != 3 or fields[2] not in ("0", "1"):
            raise ValueError(f"{path}:{lineno}: expected 'question<TAB>sentence<TAB>0|1', got {line[:60]!r}")
        rows.setdefault(fields[0], []).append((fields[1], int(fields[2])))
    groups = []
    for number, (question, pairs) in enumerate(rows.items()):
        group = Group(f"wikiqa:{number}", question, "wikiqa")
        gold_ids = [i for i, (_, label) in enumerate(pairs) if label]
        add_context(pool, group, [sentence for sentence, _ in pairs], gold_ids, group.qid)
        groups.append(group)
    return groups


def toy_triple_groups(pool: Pool, path: Path) -> list[Group]:
    """MS MARCO toy triples ``query<TAB>positive<TAB>negative``: positive labelled 1, negative 0."""
    groups: dict[str, Group] = {}
    for lineno, line in numbered_lines(path, "triples"):
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{path}:{lineno}: expected 'query<TAB>positive<TAB>negative'")
        query, positive, negative = (f.strip() for f in fields)
        group = groups.setdefault(query, Group(f"msmarco-toy:{len(groups)}", query, "msmarco-toy"))
        add_labelled(group, pool.add(positive, "msmarco-toy", f"{group.qid}+"), 1, None)
        add_labelled(group, pool.add(negative, "msmarco-toy", f"{group.qid}-{lineno}"), 0, None)
    return list(groups.values())


def dl21_validation(pool: Pool, dl21: TrecDLSet) -> list[Group]:
    """DL21 judged queries with their whole BM25 top-100 run (duplicate texts kept) and graded qrels."""
    groups = []
    for qid in sorted(dl21.qrels):
        group = Group(f"dl21:{qid}", dl21.topics[qid], "dl21", qrels=dict(dl21.qrels[qid]))
        for docno, score in sorted(dl21.run[qid].items(), key=lambda item: (-item[1], item[0])):
            pid = pool.pid_of(dl21.passages[docno])
            if pid not in pool.passages:
                raise RuntimeError(f"DL21 passage {docno} is not in the pool; add the DL21 passages first")
            group.candidates.append(pid)
            group.docnos.append(docno)
            group.bm25_given.append(score)
        groups.append(group)
    return groups


def held_out(qid: str, seed: int, share: float) -> bool:
    """Deterministic, order-free choice of the pruning-validation queries."""
    digest = hashlib.sha1(f"{seed}:{qid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def synthetic_groups(pool: Pool, path: Path, banned: set[str]) -> tuple[list[Group], Counter]:
    """Groups of source ``synthetic`` from a cleaned synthetic-query file (``training/synthetic_queries.py
    clean``: gzip JSON lines ``{qid, query, pid, source, prompt_id}``) and the counts of skipped records.

    Each query's source passage is its one labelled candidate, ``label`` 1 (a passage-level positive: no
    gold sentence spans); BM25 candidates are added later like for every group. Skipped: a ``pid`` not in
    the pool (``pid_not_in_pool``: the file was generated from another pool), a query equal or near-equal
    to a normalised text in ``banned`` (``eval_query``; ``ragprune.training.synthetic.EvalOverlap``), a
    repeated qid (``repeated_qid``). FileNotFoundError when ``path`` is missing.
    """
    if not path.exists():
        raise FileNotFoundError(f"synthetic query file not found: {path}")
    overlap = EvalOverlap(banned)
    groups: list[Group] = []
    skipped: Counter = Counter()
    seen: set[str] = set()
    for record in read_records(path):
        if record["pid"] not in pool.passages:
            skipped["pid_not_in_pool"] += 1
        elif overlap.match(record["query"]):
            skipped["eval_query"] += 1
        elif record["qid"] in seen:
            skipped["repeated_qid"] += 1
        else:
            seen.add(record["qid"])
            group = Group(record["qid"], record["query"], "synthetic")
            add_labelled(group, record["pid"], 1, None)
            groups.append(group)
    return groups, skipped


def synthetic_agreement(
    groups: list[Group], teacher: dict[str, np.ndarray], k: int = AGREEMENT_TOP_K
) -> tuple[list[Group], int]:
    """Drop the ``synthetic`` groups whose source passage the teacher does not rank among the top ``k`` of
    its candidates (``ragprune.training.synthetic.teacher_agreement``; why k=3: its docstring and DATA.md);
    other groups pass unchanged. Returns the kept groups (in order) and how many were dropped."""
    kept = []
    for group in groups:
        if group.source == "synthetic":
            (positive,) = (i for i, p in enumerate(group.candidates) if group.labels.get(p) == 1)
            if not teacher_agreement(teacher[group.qid], positive, k):
                continue
        kept.append(group)
    return kept, len(groups) - len(kept)


# --------------------------------------------------------------------------------------------------
# BM25 candidates
# --------------------------------------------------------------------------------------------------


def bm25_candidates(
    pool: Pool, group_list: list[Group], depth: int, floor_depth: int
) -> dict[str, np.ndarray]:
    """Fill each training group's candidates (pool BM25 top-*depth*, then the source's own passages) and
    return every group's BM25 score per candidate.

    Uses the project's bm25s retriever with Pyserini's MS MARCO setting (k1=0.9, b=0.4). Groups that
    already hold candidates (validation runs) or own labelled passages are searched to *floor_depth*, so
    those passages get their pool BM25 score; a passage ranked below that gets 0.
    """
    from ragprune.retrieval import get_retriever
    from ragprune.types import Document

    retriever = get_retriever("bm25s", k1=0.9, b=0.4)
    retriever.index({pid: Document(pid, passage.text) for pid, passage in sorted(pool.passages.items())})
    scores: dict[str, np.ndarray] = {}
    floored = 0
    for start in range(0, len(group_list), 500):
        batch = group_list[start : start + 500]
        deep = {g.qid: g.query for g in batch if g.candidates or g.labels}
        run = retriever.search({g.qid: g.query for g in batch if g.qid not in deep}, k=depth)
        run |= retriever.search(deep, k=floor_depth)
        for group in batch:
            ranked = run.get(group.qid, {})
            if not group.candidates:
                top = sorted(ranked.items(), key=lambda item: (-item[1], item[0]))[:depth]
                group.candidates = [pid for pid, _ in top]
                group.candidates += sorted(set(group.labels) - set(group.candidates))
            floored += sum(pid not in ranked for pid in group.candidates)
            scores[group.qid] = np.array([ranked.get(pid, 0.0) for pid in group.candidates], dtype=np.float32)
    LOG.info("BM25: %d candidates ranked below %d in the pool got score 0", floored, floor_depth)
    return scores


# --------------------------------------------------------------------------------------------------
# Teacher features and ensembles
# --------------------------------------------------------------------------------------------------


def ensemble_specs(features: list[str]) -> dict[str, Spec]:
    """Candidate teachers: name -> (combination, weights) for ``ragprune.training.ensembles.combine``.
    ``z``: weighted mean of per-query z-scores; ``rrf``: reciprocal-rank fusion; ``raw``: the single
    feature as is."""
    specs: dict[str, Spec] = {f: ("raw", {f: 1.0}) for f in features}
    specs["z(mpnet+minilm)"] = ("z", {"mpnet": 1, "minilm": 1})
    specs["z(mpnet+0.5minilm)"] = ("z", {"mpnet": 1, "minilm": 0.5})
    for w in (0.1, 0.2, 0.3, 0.5):
        specs[f"z(mpnet+{w}bm25)"] = ("z", {"mpnet": 1, "bm25": w})
        specs[f"z(mpnet+minilm+{w}bm25)"] = ("z", {"mpnet": 1, "minilm": 1, "bm25": w})
    for sentence_feature in (f for f in features if f.endswith("_maxsent")):
        specs[f"z(mpnet+minilm+0.5{sentence_feature})"] = (
            "z",
            {"mpnet": 1, "minilm": 1, sentence_feature: 0.5},
        )
        specs[f"z(mpnet+minilm+0.2bm25+0.5{sentence_feature})"] = (
            "z",
            {"mpnet": 1, "minilm": 1, "bm25": 0.2, sentence_feature: 0.5},
        )
    specs["rrf(mpnet,minilm)"] = ("rrf", {"mpnet": 1, "minilm": 1})
    specs["rrf(mpnet,minilm,bm25)"] = ("rrf", {"mpnet": 1, "minilm": 1, "bm25": 1})
    return specs


def dl21_validator(groups: list[Group]) -> RankingValidator:
    """The DL21 validator over every qrel of the validation runs, documents keyed by ``docno``."""
    return RankingValidator(
        [ValidationQuery(g.qid, g.query, tuple(g.candidates), tuple(g.docnos), dict(g.qrels)) for g in groups]
    )


def silver_quality(
    group_list: list[Group], spans_of: dict[str, list[Span]], sentence_cos: dict[str, dict[str, list]]
) -> dict:
    """How well each teacher's best-cosine sentence finds the gold sentence, per source: top-1 hit rate
    and AUC (gold vs other sentences of the same passage; a pool sentence is gold when >= 50% covered).
    Also counts gold passages where no pool sentence reaches 50% (gold is a fragment of a pool sentence)."""
    hits: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    uncovered = Counter()
    for group in group_list:
        for i, pid in enumerate(group.candidates):
            if pid not in group.gold:
                continue
            gold = [(g.start, g.end) for g in group.gold[pid]]
            is_gold = np.array([covered_share((s.start, s.end), gold) >= GOLD_SHARE for s in spans_of[pid]])
            if not is_gold.any():
                uncovered[group.source] += 1
                continue
            for name, per_candidate in sentence_cos[group.qid].items():
                cos = per_candidate[i]
                hits[group.source][f"{name}_top1"].append(float(is_gold[cos.argmax()]))
                if not is_gold.all():
                    pos, neg = cos[is_gold][:, None], cos[~is_gold][None, :]
                    hits[group.source][f"{name}_auc"].append(
                        float((pos > neg).mean() + 0.5 * (pos == neg).mean())
                    )
    table = {
        source: {key: round(float(np.mean(values)), 3) for key, values in sorted(by_key.items())}
        for source, by_key in sorted(hits.items())
    }
    return {"per_source": table, "gold_passages_without_covered_sentence": dict(uncovered)}


def window_checks(
    tokenizer: PreTrainedTokenizerBase, group_list: list[Group], pool: Pool, used: list[str], limit: int
) -> dict[str, dict[str, int]]:
    """Per source: passages longer than *limit* tokens, and gold passages with a gold span that ends
    after the last passage token fitting beside the query in a *limit*-token pair."""
    long_passages, late_gold = Counter(), Counter()
    for pid in used:
        long_passages[pool.passages[pid].source] += (
            len(tokenizer(pool.passages[pid].text)["input_ids"]) > limit
        )
    for group in group_list:
        budget = limit - len(tokenizer(group.query, add_special_tokens=False)["input_ids"]) - 3
        for pid, spans in group.gold.items():
            text = pool.passages[pid].text
            offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            last_char = offsets[budget - 1][1] if len(offsets) > budget else len(text)
            late_gold[group.source] += any(span.end > last_char for span in spans)
    return {"passages_over_limit": dict(long_passages), "gold_beyond_pair_window": dict(late_gold)}


# --------------------------------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------------------------------


def candidate_labels(group: Group) -> list[int | None]:
    """Each candidate's label: qrels grade by doc id for validation runs, else the source's label."""
    if group.docnos:
        return [group.qrels.get(docno) for docno in group.docnos]
    return [group.labels.get(pid) for pid in group.candidates]


def group_record(group: Group, feats: dict[str, np.ndarray], teacher: np.ndarray) -> dict:
    """The JSON record of a group (``groups`` / ``valid_*`` files): candidates with their features, teacher
    score and label (plus ``docno`` and the run's BM25 for validation runs), and gold spans by pid."""
    candidates = []
    labels = candidate_labels(group)
    for i, pid in enumerate(group.candidates):
        candidate = {
            "pid": pid,
            "bm25": round(float(feats["bm25"][i]), 2),
            "minilm": r3(feats["minilm"][i]),
            "mpnet": r3(feats["mpnet"][i]),
            "teacher": r3(teacher[i]),
            "label": labels[i],
        }
        if group.docnos:
            candidate["docno"] = group.docnos[i]
            candidate["bm25_run"] = round(group.bm25_given[i], 2)
        candidates.append(candidate)
    gold = {pid: [s.to_list() for s in spans] for pid, spans in sorted(group.gold.items())}
    return {
        "qid": group.qid,
        "query": group.query,
        "source": group.source,
        "candidates": candidates,
        "gold": gold,
    }


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    """The script's options (``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".cache/train"), help="output folder")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(".cache/teacher-emb"),
        help="embedding cache (kept outside --out, so --out holds only what travels to the GPU)",
    )
    parser.add_argument("--data", type=Path, default=None, help="data root (default: $RAGPRUNE_DATA)")
    parser.add_argument("--bm25-depth", type=int, default=30, help="BM25 candidates per training query")
    parser.add_argument(
        "--sentence-top", type=int, default=10, help="per-sentence cosine for top-N by teacher"
    )
    parser.add_argument(
        "--pruning-holdout", type=float, default=0.1, help="share of gold-sentence queries held out"
    )
    parser.add_argument(
        "--sentence-teachers", default="minilm,mpnet", help="teachers for per-sentence cosine"
    )
    parser.add_argument("--teacher", default=None, help="force an ensemble by name instead of the DL21 best")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--synthetic",
        type=Path,
        default=None,
        help="cleaned synthetic queries (training/synthetic_queries.py clean) to add as source 'synthetic'",
    )
    parser.add_argument(
        "--synthetic-top-k",
        type=int,
        default=AGREEMENT_TOP_K,
        help="keep a synthetic query if the teacher ranks its passage in this top-k of its candidates",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        handlers=[logging.FileHandler(out / "log.txt"), logging.StreamHandler()],
    )
    import torch

    from ragprune.training import teachers

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    timings: dict[str, float] = {}
    clock = time.time()
    root = args.data or data_root()
    LOG.info("data root %s, output %s", root, out)

    # 1-2. Pool, training queries, validation queries ------------------------------------------------
    dl21, dl22 = load_trec_dl(root / "trec-dl/dl21"), load_trec_dl(root / "trec-dl/dl22-unjudged")
    pool = Pool()
    add_trec_passages(pool, dl21, "dl21")
    add_trec_passages(pool, dl22, "dl22")
    groups: list[Group] = []
    groups += [
        Group(f"msmarco-dev:{qid}", text, "msmarco-dev")
        for qid, text in sorted(read_topics(root / "msmarco/dev-small.queries.tsv").items())
    ]
    groups += [Group(f"dl22:{qid}", text, "dl22") for qid, text in sorted(dl22.topics.items())]
    groups += pruning_groups(pool, root / "pruning/nq_oracle_silver_train.jsonl", "nq", lambda e: e.id)
    groups += pruning_groups(
        pool, root / "pruning/hotpotqa_train_distractor_100.jsonl", "hotpotqa", lambda e: e.id
    )
    groups += pruning_groups(
        pool, root / "pruning/scifact_rationales_train.jsonl", "scifact", lambda e: e.id.split("_")[0]
    )
    groups += pruning_groups(pool, root / "pruning/trecqa_train.jsonl", "trecqa", lambda e: e.id)
    groups += wikiqa_groups(pool, root / "pruning/wikiqa_train_pairs.tsv")
    groups += toy_triple_groups(pool, root / "msmarco/triples.toy100.tsv")
    valid = dl21_validation(pool, dl21)

    banned = eval_query_texts(root) | {normalise_query(g.query) for g in valid}
    dropped = Counter(g.source for g in groups if normalise_query(g.query) in banned)
    groups = [g for g in groups if normalise_query(g.query) not in banned]
    LOG.info("dropped training queries that repeat an evaluation/validation query: %s", dict(dropped))
    prune_valid = [
        g for g in groups if g.source in GOLD_SOURCES and held_out(g.qid, args.seed, args.pruning_holdout)
    ]
    held = {g.qid for g in prune_valid}
    groups = [g for g in groups if g.qid not in held]
    synthetic_stats: dict[str, object] = {}
    if args.synthetic:
        synthetic, skipped = synthetic_groups(pool, args.synthetic, banned)
        groups += synthetic
        synthetic_stats = {"file": str(args.synthetic), "read": len(synthetic), "skipped": dict(skipped)}
        LOG.info("synthetic queries: %d groups from %s, skipped %s", len(synthetic), args.synthetic, skipped)
    LOG.info(
        "pool %d passages; %d training queries %s; %d pruning-validation queries; %d DL21 validation queries",
        len(pool.passages),
        len(groups),
        dict(Counter(g.source for g in groups)),
        len(prune_valid),
        len(valid),
    )

    # 3. BM25 candidates ------------------------------------------------------------------------------
    bm25_scores = bm25_candidates(pool, groups + prune_valid + valid, args.bm25_depth, floor_depth=1000)
    # A listwise target needs at least two candidates; a few MS MARCO queries match almost nothing here.
    too_few = Counter(g.source for g in groups + prune_valid if len(g.candidates) < 2)
    groups = [g for g in groups if len(g.candidates) >= 2]
    prune_valid = [g for g in prune_valid if len(g.candidates) >= 2]
    LOG.info("dropped queries with fewer than 2 candidates: %s", dict(too_few))
    timings["pool+bm25_s"] = time.time() - clock
    LOG.info("BM25 candidates done (%.0f s)", timings["pool+bm25_s"])

    # 4. Teacher embeddings (cached) ------------------------------------------------------------------
    used = sorted({p for g in groups + prune_valid + valid for p in g.candidates})
    used_texts = [pool.passages[p].text for p in used]
    every_group = groups + prune_valid + valid
    queries = [g.query for g in every_group]
    passage_emb: dict[str, np.ndarray] = {}
    query_emb: dict[str, np.ndarray] = {}
    sentence_teachers = [t for t in args.sentence_teachers.split(",") if t]
    spans_of = {p: split_sentences(pool.passages[p].text) for p in used}
    sentence_texts = [pool.passages[p].text[s.start : s.end] for p in used for s in spans_of[p]]
    sentence_emb: dict[str, np.ndarray] = {}
    for name in teachers.TEACHERS:
        start = time.time()
        model = teachers.load_teacher(name)
        emb = args.cache
        passage_emb[name] = teachers.encode_cached(
            model, used_texts, teachers.EmbeddingCache(emb / f"{name}-passages"), label=f"{name} passages"
        )
        query_emb[name] = teachers.encode_cached(
            model, queries, teachers.EmbeddingCache(emb / f"{name}-queries"), label=f"{name} queries"
        )
        if name in sentence_teachers:
            sentence_emb[name] = teachers.encode_cached(
                model,
                sentence_texts,
                teachers.EmbeddingCache(emb / f"{name}-sentences"),
                label=f"{name} sentences",
            )
        timings[f"{name}_encode_s"] = time.time() - start
        if name == "minilm":
            checks = window_checks(model.tokenizer, groups + prune_valid, pool, used, teachers.MAX_SEQ_LENGTH)
            LOG.info("window checks (MiniLM tokens, limit %d): %s", teachers.MAX_SEQ_LENGTH, checks)
        del model

    # Per-group features: cosine per teacher, BM25, best-sentence cosine.
    used_row = {p: i for i, p in enumerate(used)}
    sentence_offsets = np.cumsum([0] + [len(spans_of[p]) for p in used])
    feats: dict[str, dict[str, np.ndarray]] = {}
    sentence_cos: dict[str, dict[str, list[np.ndarray]]] = {}
    for gi, group in enumerate(every_group):
        rows = [used_row[p] for p in group.candidates]
        f = {"bm25": bm25_scores[group.qid]}
        per_sentence: dict[str, list[np.ndarray]] = {}
        for name in teachers.TEACHERS:
            f[name] = passage_emb[name][rows] @ query_emb[name][gi]
            if name in sentence_emb:
                per_sentence[name] = [
                    sentence_emb[name][sentence_offsets[r] : sentence_offsets[r + 1]] @ query_emb[name][gi]
                    for r in rows
                ]
                f[f"{name}_maxsent"] = np.array([c.max() for c in per_sentence[name]], dtype=np.float32)
        feats[group.qid] = f
        sentence_cos[group.qid] = per_sentence

    # DL21 validation table and the teacher choice (DL19/DL20 are never looked at here).
    specs = ensemble_specs(sorted(feats[valid[0].qid]))
    validator = dl21_validator(valid)
    per_query = {"bm25 (official run)": validator.evaluate({g.qid: g.bm25_given for g in valid}).per_query}
    for name, spec in specs.items():
        per_query[name] = validator.evaluate({g.qid: combine(spec, feats[g.qid]) for g in valid}).per_query
    table = {name: float(np.mean(list(values.values()))) for name, values in per_query.items()}
    for name, value in table.items():
        LOG.info("DL21 nDCG@10  %-48s %.4f", name, value)
    # Distillation needs graded scores, so RRF (ranks only) is reported but not chosen; ties go to
    # the ensemble with fewer parts.
    eligible = {n: v for n, v in table.items() if n in specs and specs[n][0] != "rrf"}
    chosen = args.teacher or max(eligible, key=lambda n: (round(eligible[n], 4), -len(specs[n][1])))
    test = paired_test(per_query["mpnet"], per_query[chosen])
    LOG.info(
        "teacher: %s (DL21 nDCG@10 %.4f; vs mpnet %+.4f, paired t p=%.3f, randomization p=%.3f)",
        chosen,
        table[chosen],
        test.mean_diff,
        test.t_pvalue,
        test.randomization_pvalue,
    )
    teacher = {g.qid: combine(specs[chosen], feats[g.qid]) for g in every_group}
    if args.synthetic:
        before = sum(g.source == "synthetic" for g in groups)
        groups, disagreed = synthetic_agreement(groups, teacher, args.synthetic_top_k)
        synthetic_stats |= {"top_k": args.synthetic_top_k, "dropped_teacher_disagrees": disagreed}
        synthetic_stats["kept"] = before - disagreed
        LOG.info(
            "synthetic queries: %d of %d kept (teacher ranks the source passage in its top %d)",
            before - disagreed,
            before,
            args.synthetic_top_k,
        )
    spread = float(np.median([feats[g.qid]["mpnet"].std() for g in groups if len(g.candidates) > 1]))
    spread_t = float(np.median([teacher[g.qid].std() for g in groups if len(g.candidates) > 1]))
    silver = silver_quality(groups + prune_valid, spans_of, sentence_cos)
    LOG.info("silver sentence evidence vs gold: %s", silver)

    # 5-6. Outputs -------------------------------------------------------------------------------------
    def sentence_records(group_list: list[Group]) -> Iterable[dict]:
        for group in group_list:
            order = np.lexsort((np.arange(len(group.candidates)), -teacher[group.qid]))
            chosen_rows = set(order[: args.sentence_top].tolist())
            chosen_rows |= {i for i, p in enumerate(group.candidates) if p in group.labels}
            for i in sorted(chosen_rows):
                record = {"qid": group.qid, "pid": group.candidates[i]}
                for name, values in sentence_cos[group.qid].items():
                    record["cos" if name == "minilm" else f"cos_{name}"] = [r3(c) for c in values[i]]
                yield record

    files = {
        "pool.jsonl.gz": (
            {
                "pid": p,
                "text": pool.passages[p].text,
                "sentences": [s.to_list() for s in spans_of[p]],
                "source": pool.passages[p].source,
                "ids": pool.passages[p].ids,
            }
            for p in used
        ),
        "groups.jsonl.gz": (group_record(g, feats[g.qid], teacher[g.qid]) for g in groups),
        "valid_pruning.jsonl.gz": (group_record(g, feats[g.qid], teacher[g.qid]) for g in prune_valid),
        "valid_dl21.jsonl.gz": (group_record(g, feats[g.qid], teacher[g.qid]) for g in valid),
        "sentences.jsonl.gz": sentence_records(groups + prune_valid),
    }
    counts = {name: write_jsonl_gz(out / name, records) for name, records in files.items()}
    sizes = {name: (out / name).stat().st_size for name in files}
    timings["total_s"] = time.time() - clock

    def describe(group_list: list[Group]) -> dict:
        by_source: dict[str, Counter] = defaultdict(Counter)
        for g in group_list:
            c = by_source[g.source]
            c["queries"] += 1
            c["candidates"] += len(g.candidates)
            labels = candidate_labels(g)
            c["label_1plus"] += sum(v is not None and v > 0 for v in labels)
            c["label_0"] += sum(v == 0 for v in labels)
            c["gold_pairs"] += len(g.gold)
        return {s: dict(c) for s, c in sorted(by_source.items())}

    stats = {
        "pool_passages_total": len(pool.passages),
        "pool_passages_written": len(used),
        "pool_by_source": dict(Counter(pool.passages[p].source for p in used)),
        "sentences_in_pool": int(sentence_offsets[-1]),
        "train": describe(groups),
        "valid_pruning": describe(prune_valid),
        "valid_dl21": describe(valid),
        "dropped_repeating_eval_queries": dict(dropped),
        "dropped_fewer_than_2_candidates": dict(too_few),
        **({"synthetic": synthetic_stats} if args.synthetic else {}),
        "dl21_ndcg10": {k: round(v, 4) for k, v in table.items()},
        "teacher": {
            "name": chosen,
            "spec": specs[chosen],
            "dl21_ndcg10": round(table[chosen], 4),
            "vs_mpnet": {
                "mean_diff": round(test.mean_diff, 4),
                "t_pvalue": round(test.t_pvalue, 4),
                "randomization_pvalue": round(test.randomization_pvalue, 4),
            },
        },
        "median_within_query_std": {"mpnet_cos": round(spread, 4), "teacher": round(spread_t, 4)},
        "silver_vs_gold": silver,
        "window_checks": checks,
        "records": counts,
        "bytes": sizes,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    for name in files:
        LOG.info("%-24s %8d records %8.2f MB", name, counts[name], sizes[name] / 1e6)
    LOG.info("total %.2f MB; done in %.0f s", sum(sizes.values()) / 1e6, timings["total_s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
