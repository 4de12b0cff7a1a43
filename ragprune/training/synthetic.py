"""Synthetic training queries with a real positive: one generated question per pool passage, the passage
being its positive (InPars, Bonifacio et al. 2022, arXiv:2202.05144; Promptagator, Dai et al. 2022,
arXiv:2209.11755). ``training/synthetic_queries.py`` generates them with a small local LM; this module holds
what does not need the LM, so that it is testable offline:

* :func:`build_messages` / :data:`PROMPTS`: the few-shot chat prompt (the prompt text is in this file, so a
  ``prompt_id`` in the output names exactly one prompt).
* :func:`clean_generation` + :func:`degenerate_reason`: one raw generation to a query, or the reason it is
  dropped (empty, too short / long, not a query, copy of the passage, repeated tokens).
* :class:`EvalOverlap`: exact and near-duplicate matching against every evaluation query (normalised with
  ``build_data``'s key, :func:`ragprune.training.decontam.normalise_query`).
* :func:`clean_records`: the whole cleaning pass with per-reason counts.
* :func:`read_records` / :func:`append_records`: the resumable gzip JSON-lines output.
* :func:`teacher_agreement`: the filter ``build_data.py --synthetic`` applies once teacher scores exist.

Output record (one per passage and prompt): ``{"qid", "query", "pid", "source", "prompt_id"}`` with
``qid = "syn:<prompt_id>:<pid>"``; ``source`` is the passage's pool source (``dl22``, ``nq``, ...).
No torch here.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragprune.training.decontam import normalise_query

LOG = logging.getLogger(__name__)

PASSAGE_SOURCES = ("dl22", "nq", "wikiqa", "hotpotqa", "scifact", "trecqa")
"""Pool sources whose passages get a synthetic query: DL22 passages and the train windows of the
gold-sentence sets. Never ``dl21`` (the ranking validation split) nor ``msmarco-toy``; the evaluation
sets (DL19/DL20, BEIR SciFact, pruning dev) are not in the pool at all."""

# --------------------------------------------------------------------------------------------------
# Prompt
# --------------------------------------------------------------------------------------------------

SYSTEM = "You write the search query a person would type to find a passage."
INSTRUCTION = "Passage: {passage}\nWrite one search question that this passage answers."
SHOTS: tuple[tuple[str, str], ...] = (
    (
        "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is "
        "named after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 "
        "to 1889.",
        "who designed the eiffel tower",
    ),
    (
        "Symptoms of vitamin B12 deficiency include fatigue, weakness, constipation, loss of appetite, "
        "and weight loss. Neurological changes such as numbness and tingling in the hands and feet can "
        "also occur.",
        "what are the symptoms of low vitamin b12",
    ),
)
"""Two demonstrations written for this project (not taken from any dataset): web-search style, lower
case, answerable from the passage — the MS MARCO query style of the evaluation (DL19/DL20)."""

PROMPTS = {"chat2shot-v1": (SYSTEM, INSTRUCTION, SHOTS)}
"""prompt_id -> (system message, user template with ``{passage}``, demonstrations)."""
DEMO_TOPICS = {"chat2shot-v1": frozenset({"eiffel", "gustave", "b12"})}
"""prompt_id -> the demonstrations' topic words. The 135M model sometimes carries a demonstration's topic
into an unrelated query ("what is the tax on the use of the eiffel tower in the state of vermont"): a
query with one of these words is dropped unless its passage has the word too."""
DEFAULT_PROMPT = "chat2shot-v1"

MAX_PASSAGE_CHARS = 1000
"""Longer passages are cut (at a space) in the prompt only; pool windows are at most 800 characters."""


def build_messages(passage: str, prompt_id: str = DEFAULT_PROMPT) -> list[dict[str, str]]:
    """The chat messages (``[{"role", "content"}]``) asking for one query about ``passage``.

    Few-shot in chat form: system instruction, then each demonstration as a user turn (passage +
    instruction) and an assistant turn (its query), then the passage to query. The caller renders it with
    the model's chat template. Raises KeyError for an unknown ``prompt_id`` and ValueError for a blank
    passage.
    """
    if not passage.strip():
        raise ValueError("empty passage")
    system, template, shots = PROMPTS[prompt_id]
    text = " ".join(passage.split())
    if len(text) > MAX_PASSAGE_CHARS:
        text = text[:MAX_PASSAGE_CHARS].rsplit(" ", 1)[0]
    messages = [{"role": "system", "content": system}]
    for shot_passage, shot_query in shots:
        messages.append({"role": "user", "content": template.format(passage=shot_passage)})
        messages.append({"role": "assistant", "content": shot_query})
    messages.append({"role": "user", "content": template.format(passage=text)})
    return messages


def synthetic_qid(pid: str, prompt_id: str) -> str:
    """The query id of the query generated for ``pid`` with ``prompt_id``."""
    return f"syn:{prompt_id}:{pid}"


def passage_order(pid: str) -> int:
    """A stable pseudo-random rank of a passage (CRC-32 of its pid): generation walks the passages in this
    order, so a partial run covers every source in proportion, and a resumed run continues the same walk."""
    return zlib.crc32(pid.encode())


# --------------------------------------------------------------------------------------------------
# Cleaning
# --------------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text`` as a set."""
    return frozenset(text.split())


MIN_WORDS = 3
"""Fewer words is not a usable query ("what?", "eiffel tower" carries no intent)."""
MAX_WORDS = 30
"""More words is a sentence of the passage or a rambling answer, not a query (MS MARCO queries: ~6)."""
MAX_COPY_RUN = 8
"""A query sharing a run of this many consecutive words with its passage copies the passage."""
MAX_TOKEN_SHARE = 0.34
"""A query in which one word is more than this share of the words (and occurs 3+ times) is repetition."""

QUESTION_WORDS = _words(
    "what who whom whose when where which why how is are was were do does did can could should would "
    "will name list define definition meaning cost average"
)
"""First words of a query-like text; anything else must end with ``?`` to count as a question."""
_GENERIC = frozenset(
    normalise_query(q)
    for q in (
        "what's the answer",
        "what is the answer",
        "what is this passage about",
        "what is the passage about",
        "what does this passage say",
        "what is the main idea of the passage",
        "what is the question",
    )
)
"""Queries about the passage itself rather than about its content."""
_PREFIX = re.compile(r"^\s*(?:(?:search\s+)?(?:query|question)\s*\d*\s*[:\-]\s*|\d+[.)]\s*|[-*•]\s*)", re.I)


def clean_generation(text: str) -> str:
    """Normalise a raw generation into a query: first non-empty line, a leading ``Query:`` / ``1.`` /
    bullet label and surrounding quotes removed, whitespace collapsed. May return ``""``."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = _PREFIX.sub("", lines[0]).strip()
    line = line.strip("\"'`“”‘’ ").strip()
    return " ".join(line.split())


def degenerate_reason(query: str, passage: str, demo_topics: frozenset[str] = frozenset()) -> str | None:
    """Why a cleaned query is unusable, or None when it is kept.

    Reasons (in this order): ``empty``; ``too_short`` (< :data:`MIN_WORDS` words); ``too_long``
    (> :data:`MAX_WORDS`); ``repeated_tokens`` (a word is over :data:`MAX_TOKEN_SHARE` of the words and
    occurs 3+ times, or the same bigram with a content word occurs 3+ times); ``not_a_query`` (does not
    start with a question word and does not end with ``?``); ``generic`` (asks about "the passage" /
    "the answer"); ``copies_passage`` (the normalised query is inside the passage, or shares
    :data:`MAX_COPY_RUN` consecutive words with it — a copied sentence is trivially matched by BM25 and
    teaches nothing); ``echoes_demonstration`` (a word of ``demo_topics``, see :data:`DEMO_TOPICS`, absent
    from the passage).
    """
    words = normalise_query(query).split()
    if not words:
        return "empty"
    if len(words) < MIN_WORDS:
        return "too_short"
    if len(words) > MAX_WORDS:
        return "too_long"
    top_word, top_count = Counter(words).most_common(1)[0]
    bigrams = Counter(b for b in zip(words, words[1:]) if not (b[0] in STOP_WORDS and b[1] in STOP_WORDS))
    if (top_count >= 3 and top_count / len(words) > MAX_TOKEN_SHARE) or (
        bigrams and bigrams.most_common(1)[0][1] >= 3
    ):
        return "repeated_tokens"
    if words[0] not in QUESTION_WORDS and not query.rstrip().endswith("?"):
        return "not_a_query"
    if " ".join(words) in _GENERIC or "this passage" in " ".join(words) or "the passage" in " ".join(words):
        return "generic"
    norm_passage = f" {normalise_query(passage)} "
    if f" {' '.join(words)} " in norm_passage:
        return "copies_passage"
    for i in range(len(words) - MAX_COPY_RUN + 1):
        if f" {' '.join(words[i : i + MAX_COPY_RUN])} " in norm_passage:
            return "copies_passage"
    if any(w in demo_topics and f" {w} " not in norm_passage for w in words):
        return "echoes_demonstration"
    return None


# --------------------------------------------------------------------------------------------------
# Evaluation overlap
# --------------------------------------------------------------------------------------------------

STOP_WORDS = _words(
    "a an the of in on at to for from by with and or is are was were be been do does did what who "
    "whom whose when where which why how s it its this that"
)
NEAR_JACCARD = 0.8
"""Content-word sets this similar (Jaccard) count as the same query: catches reorderings and added
function words ("what is the cost of X" vs "cost of X")."""


def content_words(normalised: str) -> frozenset[str]:
    """The words of a normalised query minus :data:`STOP_WORDS`, a plural ``s`` stripped (``cats`` ->
    ``cat``); falls back to every word when all are stop words."""
    words = normalised.split()
    content = [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]
    kept = frozenset(w for w in content if w not in STOP_WORDS)
    return kept or frozenset(words)


class EvalOverlap:
    """Matches queries against the evaluation queries: equal normalised text, or near-equal content words.

    Built from normalised texts (``ragprune.training.decontam.eval_query_texts`` gives DL19/DL20 topics, BEIR
    SciFact queries and the pruning dev questions; callers add DL21's). Lookup cost: one inverted-index
    probe per content word.
    """

    def __init__(self, normalised_texts: Iterable[str], near: float = NEAR_JACCARD) -> None:
        self.exact = set(normalised_texts)
        self.near = near
        self._sets: list[frozenset[str]] = []
        self._index: dict[str, list[int]] = {}
        for text in sorted(self.exact):
            words = content_words(text)
            for word in words:
                self._index.setdefault(word, []).append(len(self._sets))
            self._sets.append(words)

    def match(self, query: str) -> str | None:
        """``"eval_exact"``, ``"eval_near"`` or None for a raw (not yet normalised) query."""
        normalised = normalise_query(query)
        if normalised in self.exact:
            return "eval_exact"
        words = content_words(normalised)
        seen: set[int] = set()
        for word in words:
            for i in self._index.get(word, ()):
                if i in seen:
                    continue
                seen.add(i)
                other = self._sets[i]
                if len(words & other) / len(words | other) >= self.near:
                    return "eval_near"
        return None


# --------------------------------------------------------------------------------------------------
# Records: resumable output, cleaning pass
# --------------------------------------------------------------------------------------------------


def read_records(path: Path, repair: bool = False) -> list[dict]:
    """Every complete record of a gzip JSON-lines file written by :func:`append_records` ([] if missing).

    A run killed mid-write leaves a truncated last gzip member or a half line: reading stops there. With
    ``repair`` the file is then rewritten (through a temporary file) with the complete records only, so
    the next append starts from a clean end.
    """
    if not path.exists():
        return []
    records: list[dict] = []
    damaged = False
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    damaged = True
                    break
    except (EOFError, OSError, zlib.error):
        damaged = True
    if damaged:
        LOG.warning("%s: damaged tail after %d records%s", path, len(records), "; repaired" if repair else "")
        if repair:
            tmp = path.with_suffix(".repair")
            with gzip.open(tmp, "wt", encoding="utf-8") as handle:
                for record in records:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            tmp.replace(path)
    return records


def append_records(path: Path, records: Sequence[dict]) -> None:
    """Append ``records`` to a gzip JSON-lines file as one new gzip member (readable as one stream)."""
    if not records:
        return
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    with open(path, "ab") as handle:
        handle.write(gzip.compress(data))
        handle.flush()


@dataclass
class CleanResult:
    """:func:`clean_records`'s output: kept records (``query`` cleaned, ``raw`` kept) and drop counts."""

    kept: list[dict]
    dropped: Counter


def clean_records(records: Iterable[dict], passages: dict[str, str], overlap: EvalOverlap) -> CleanResult:
    """Clean raw generations: normalise (:func:`clean_generation`), drop degenerate ones
    (:func:`degenerate_reason`, with the :data:`DEMO_TOPICS` of the record's ``prompt_id``), drop
    evaluation overlaps (:class:`EvalOverlap`), then deduplicate.

    Deduplication: one record per normalised query — a query generated for several passages is ambiguous
    as a single-positive training query — so *every* record of a repeated query is dropped (reason
    ``duplicate``); a repeated (qid) record keeps its first occurrence (``repeated_qid``). ``passages``
    maps pid -> text (KeyError for an unknown pid). Records keep their order.
    """
    dropped: Counter = Counter()
    staged: list[dict] = []
    seen_qids: set[str] = set()
    for record in records:
        if record["qid"] in seen_qids:
            dropped["repeated_qid"] += 1
            continue
        seen_qids.add(record["qid"])
        query = clean_generation(record["query"])
        topics = DEMO_TOPICS.get(record.get("prompt_id", ""), frozenset())
        reason = degenerate_reason(query, passages[record["pid"]], topics) or overlap.match(query)
        if reason:
            dropped[reason] += 1
            continue
        staged.append({**record, "query": query, "raw": record["query"]})
    counts = Counter(normalise_query(r["query"]) for r in staged)
    kept = [r for r in staged if counts[normalise_query(r["query"])] == 1]
    dropped["duplicate"] += len(staged) - len(kept)
    return CleanResult(kept, +dropped)


# --------------------------------------------------------------------------------------------------
# Teacher agreement (applied in build_data.py once teacher scores exist)
# --------------------------------------------------------------------------------------------------

AGREEMENT_TOP_K = 3
"""Keep a synthetic query when the teacher ranks its source passage among its top 3 candidates.

Why 3: the candidates are the BM25 top-30 of a 25k-passage pool that holds many near-duplicate and
same-topic passages (MS MARCO v2 duplicates, windows of one abstract), so another passage may answer the
query as well as its source; requiring rank 1 would drop good queries for that reason alone, while a
source outside the top 3 means the teacher does not see the query as being about that passage (a vague or
off-topic generation), and its positive label would contradict the distillation target. Promptagator keeps
a query when its passage is in the round-trip top-1 of a retriever trained on the synthetic data; InPars
keeps the top share by the generator's likelihood; this filter uses the teacher, the same judge the student
is distilled from."""


def teacher_agreement(teacher_scores: np.ndarray, positive: int, k: int = AGREEMENT_TOP_K) -> bool:
    """Whether candidate ``positive`` is among the top ``k`` of ``teacher_scores`` (shape ``(n,)``).

    Ties count in the positive's favour only up to ``k`` (its rank = 1 + number of strictly higher
    scores). Raises IndexError for a ``positive`` outside the candidates and ValueError for ``k < 1``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = np.asarray(teacher_scores, dtype=np.float64)
    if not -len(scores) <= positive < len(scores):
        raise IndexError(f"positive {positive} outside {len(scores)} candidates")
    return int((scores > scores[positive]).sum()) < k
