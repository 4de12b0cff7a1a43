"""Training data in memory: a ``build_data.py`` folder read, tokenized once, and turned into groups.

* :class:`Group` / :class:`Candidate`: one training query with its candidates, teacher scores (z-scored
  per query), sentence labels and token-loss weights (:func:`build_groups`);
* :class:`Example`: one (query, passage, sentence labels, weight) pair for the token loss alone (spliced
  passages, held-out gold passages);
* :class:`TrainingData` (:func:`load_training_data`): everything a run reads;
* :func:`sample_group`: the candidates of one query that go into one step.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ragprune.training import files
from ragprune.training.labels import sentence_labels

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ragprune.pipeline.encoding import TokenizedPassage
    from ragprune.training.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """One candidate passage of a group: ``teacher`` is its z-scored teacher score, ``labels`` its sentence
    labels ``[S]`` (1 keep / 0 drop), ``weight`` the passage's weight in the token loss."""

    pid: str
    teacher: float
    labels: np.ndarray
    weight: float = 1.0


@dataclass
class Group:
    """One query: its token ids (no special tokens, capped), candidates, the pids of its gold passages and
    the dataset it comes from (``build_data.py``'s ``source``: ``nq``, ``wikiqa``, ``scifact``, ...)."""

    qid: str
    query: str
    query_ids: np.ndarray
    candidates: list[Candidate]
    gold: set[str]
    source: str = ""


class Example(NamedTuple):
    """One pair for the token loss: query token ids, the tokenized passage, sentence labels ``[S]`` and the
    passage's weight."""

    query_ids: np.ndarray
    passage: TokenizedPassage
    labels: np.ndarray
    weight: float


def build_groups(
    records: list[dict],
    pool_index: dict[str, int],
    passages: list[TokenizedPassage],
    query_ids: dict[str, np.ndarray],
    cosines: dict[tuple[str, str], list[float]],
    *,
    silver_margin: float,
    silver_min_cos: float,
    silver_weight: float,
    irrelevant_weight: float,
    gold_weights: Mapping[str, float] | None = None,
) -> list[Group]:
    """Groups of ``build_data.py`` records (``groups.jsonl.gz``, ``valid_pruning.jsonl.gz``).

    Candidates outside the pool are dropped, and records left with fewer than two candidates (no list to
    rank). Teacher scores are z-scored per query. Sentence labels (:func:`sentence_labels`): gold where
    the record names gold spans; silver for the teacher's top candidate of a record without gold, when it
    is not judged non-relevant and its MPNet cosine reaches ``silver_min_cos`` (z-scores rank junk too);
    all "drop" otherwise. Token-loss weights: gold 1, or ``gold_weights[record["source"]]`` for the
    sources it names, ``silver_weight`` silver, 0 for a passage judged
    relevant (``label`` >= 1, e.g. a synthetic query's source) that is neither gold nor silver (its
    sentences are unknown, and "all drop" would teach the token head to prune a relevant passage away;
    found in session 6), ``irrelevant_weight`` the rest. ``cosines[(qid, pid)]`` holds the per-sentence
    teacher cosines of ``sentences.jsonl.gz``.
    """
    groups = []
    for record in records:
        candidates = [c for c in record["candidates"] if c["pid"] in pool_index]
        if len(candidates) < 2:
            continue
        teacher = np.asarray([c["teacher"] for c in candidates], float)
        z = (teacher - teacher.mean()) / (teacher.std() + 1e-6)
        top = int(np.argmax(z))
        gold = record.get("gold") or {}
        built = []
        for i, c in enumerate(candidates):
            passage = passages[pool_index[c["pid"]]]
            silver = not gold and c.get("label") != 0 and i == top and c.get("mpnet", 0.0) >= silver_min_cos
            relevant = c["pid"] in gold or silver
            labels = sentence_labels(
                passage, gold.get(c["pid"]), cosines.get((record["qid"], c["pid"])), relevant, silver_margin
            )
            if c["pid"] in gold:
                weight = (gold_weights or {}).get(record.get("source", ""), 1.0)
            elif silver:
                weight = silver_weight
            elif (c.get("label") or 0) >= 1:  # judged relevant, sentences unknown: not all "drop"
                weight = 0.0
            else:
                weight = irrelevant_weight
            built.append(Candidate(c["pid"], float(z[i]), labels, weight))
        groups.append(
            Group(
                record["qid"],
                record["query"],
                query_ids[record["qid"]],
                built,
                set(gold),
                record.get("source", ""),
            )
        )
    return groups


def sample_group(group: Group, size: int, rng: random.Random, teacher_top: int = 4) -> list[Candidate]:
    """``size`` candidates of ``group`` for one step, sorted by teacher score (highest first).

    The gold candidates and the teacher's top ``teacher_top`` always come first (cut to ``size`` if they
    are more); the rest is drawn without replacement from the other candidates with ``rng``.
    """
    ranked = sorted(group.candidates, key=lambda c: -c.teacher)
    fixed = [c for c in ranked if c.pid in group.gold]
    fixed += [c for c in ranked[:teacher_top] if c.pid not in group.gold]
    rest = [c for c in ranked if c not in fixed]
    chosen = fixed[:size] + rng.sample(rest, min(len(rest), max(0, size - len(fixed))))
    return sorted(chosen, key=lambda c: -c.teacher)


@dataclass
class TrainingData:
    """What a run reads from a ``build_data.py`` folder, tokenized.

    ``texts``: pool pid -> text; ``valid``: DL21 validation records (``valid_dl21.jsonl.gz``);
    ``train_groups`` / ``threshold_groups``: groups of the training and the held-out gold-labelled
    questions; ``passages[pool_index[pid]]``: each pool passage tokenized; ``spliced`` /
    ``valid_spliced``: ``build_spliced.py``'s examples (training, held out) and
    ``valid_spliced_positions``: the gold block's position of each held-out one (``first``, ``middle``,
    ``last``, or its kind for second-hop examples).
    """

    texts: dict[str, str]
    valid: list[dict]
    train_groups: list[Group]
    threshold_groups: list[Group]
    pool_index: dict[str, int]
    passages: list[TokenizedPassage]
    spliced: list[Example]
    valid_spliced: list[Example]
    valid_spliced_positions: list[str]

    def passage(self, pid: str) -> TokenizedPassage:
        """The tokenized pool passage ``pid`` (``KeyError`` if it is not in the pool)."""
        return self.passages[self.pool_index[pid]]

    def heldout_examples(self) -> list[Example]:
        """Held-out answer-bearing passages for calibration and the held-out pruning measures: the held-out
        spliced passages first (in file order, matching ``valid_spliced_positions``), then the gold
        passages of the held-out questions (weight 1)."""
        gold = [
            Example(group.query_ids, self.passage(c.pid), c.labels, 1.0) for group, c in self._heldout_gold()
        ]
        return self.valid_spliced + gold

    def heldout_sources(self) -> list[str]:
        """The dataset of each :meth:`heldout_examples` row, in its order: ``"spliced"`` for a held-out
        spliced passage, the question's ``source`` for a gold passage."""
        return ["spliced"] * len(self.valid_spliced) + [group.source for group, _ in self._heldout_gold()]

    def _heldout_gold(self) -> Iterator[tuple[Group, Candidate]]:
        """The gold candidates of the held-out questions, with their group, in a fixed order."""
        return (
            (group, c) for group in self.threshold_groups for c in group.candidates if c.pid in group.gold
        )


def load_spliced(
    path: Path,
    tokenizer: PreTrainedTokenizerBase,
    *,
    query_tokens: int,
    hop_query_tokens: int,
    silver_margin: float,
) -> list[Example]:
    """``build_spliced.py`` records as examples of weight 1 (labels from their gold spans); an absent file
    gives none. Queries are cut to ``query_tokens``, second-hop queries (which carry evidence) to
    ``hop_query_tokens``."""
    if not path.is_file():
        return []
    from ragprune.pipeline.encoding import tokenize_passages

    records = files.read_jsonl(path)
    passages = tokenize_passages(tokenizer, [r["text"] for r in records], [""] * len(records))
    queries = tokenizer([r["query"] for r in records], add_special_tokens=False)["input_ids"]
    examples = []
    for record, passage, ids in zip(records, passages, queries):
        cap = hop_query_tokens if record["kind"].startswith("hop") else query_tokens
        labels = sentence_labels(passage, record["gold"], None, True, silver_margin)
        examples.append(Example(np.asarray(ids)[:cap], passage, labels, 1.0))
    return examples


def load_training_data(config: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> TrainingData:
    """Read the ``config.data`` folder, tokenize every passage and query once, build the groups.

    Reads ``pool``, ``groups``, ``valid_pruning``, ``valid_dl21`` and ``sentences`` (required) and the
    spliced files (optional); ``config.valid_queries`` limits the DL21 queries. ``FileNotFoundError`` for
    a missing required file.
    """
    from ragprune.pipeline.encoding import tokenize_passages

    folder = Path(config.data)
    pool = files.read_jsonl(folder / files.POOL)
    records = files.read_jsonl(folder / files.GROUPS)
    pruning_records = files.read_jsonl(folder / files.VALID_PRUNING)  # held out by build_data.py
    valid = files.read_jsonl(folder / files.VALID_DL21)
    cosines = {(r["qid"], r["pid"]): r["cos"] for r in files.read_jsonl(folder / files.SENTENCES)}
    if config.valid_queries:
        valid = valid[: config.valid_queries]
    log.info(
        "pool %d passages, %d training queries, %d validation queries", len(pool), len(records), len(valid)
    )
    t0 = time.time()
    passages = tokenize_passages(tokenizer, [p["text"] for p in pool], [""] * len(pool))
    pool_index = {p["pid"]: i for i, p in enumerate(pool)}
    with_queries = records + pruning_records
    encoded_queries = tokenizer([r["query"] for r in with_queries], add_special_tokens=False)["input_ids"]
    query_ids = {
        r["qid"]: np.asarray(ids)[: config.query_tokens] for r, ids in zip(with_queries, encoded_queries)
    }
    log.info("tokenized in %.1fs", time.time() - t0)
    labelling: dict[str, Any] = {
        "silver_margin": config.silver_margin,
        "silver_min_cos": config.silver_min_cos,
        "silver_weight": config.silver_weight,
        "irrelevant_weight": config.irrelevant_weight,
        "gold_weights": config.gold_weights,
    }
    gold_sources = {r.get("source", "") for r in records if r.get("gold")}
    unknown = sorted(set(config.gold_weights) - gold_sources)
    if unknown:
        raise ValueError(
            f"gold_source_weights names {unknown}, which no gold-labelled training record has; sources "
            f"with gold passages in {folder}: {sorted(gold_sources)}"
        )
    train_groups = build_groups(records, pool_index, passages, query_ids, cosines, **labelling)
    threshold_groups = build_groups(pruning_records, pool_index, passages, query_ids, cosines, **labelling)
    log.info(
        "%d training groups, %d held-out groups for the threshold", len(train_groups), len(threshold_groups)
    )
    spliced, valid_spliced = (
        load_spliced(
            folder / name,
            tokenizer,
            query_tokens=config.query_tokens,
            hop_query_tokens=config.hop_query_tokens,
            silver_margin=config.silver_margin,
        )
        for name in (files.SPLICED, files.VALID_SPLICED)
    )
    path = folder / files.VALID_SPLICED
    positions = [r.get("position") or r["kind"] for r in files.read_jsonl(path)] if path.is_file() else []
    log.info("%d spliced training passages, %d held out", len(spliced), len(valid_spliced))
    return TrainingData(
        texts={p["pid"]: p["text"] for p in pool},
        valid=valid,
        train_groups=train_groups,
        threshold_groups=threshold_groups,
        pool_index=pool_index,
        passages=passages,
        spliced=spliced,
        valid_spliced=valid_spliced,
        valid_spliced_positions=positions,
    )
