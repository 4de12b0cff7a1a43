"""Sentence-contrast data for the token head: spliced passages whose labels are known by construction.

Reads a ``build_data.py`` folder (training splits only) and writes, beside its files,

* ``spliced.jsonl.gz`` from ``groups.jsonl.gz`` and ``valid_spliced.jsonl.gz`` from the held-out
  ``valid_pruning.jsonl.gz`` (threshold calibration), one record per synthetic passage::

    {"qid": "nq:123#s0", "query": "...", "text": "...", "gold": [[start, end], ...],
     "kind": "spliced", "position": "first|middle|last", "filler": 4, "sources": 2}

Kinds:

* ``spliced``: a block of a gold passage (its gold sentences and 0-2 neighbours on each side, so
  same-passage non-gold sentences stay in as hard negatives) placed first, in the middle or last among
  1-10 filler sentences from 1-3 other passages. Fillers are off-topic (passages of other training
  queries) or, for one source in three, same-topic (a candidate of the same query that the teacher
  scores in its lower half and no source labels relevant). The gold spans are shifted into the new text.
* ``hop``: a second-hop example of a multi-paragraph question (HotpotQA train): the query expanded with
  the gold sentences of one supporting paragraph (:func:`ragprune.pipeline.multihop.expand_query`,
  exactly what ``process(..., hops=2)`` builds), the other supporting paragraph as the passage with its
  gold; ``hop-negative``: the same query with a distractor paragraph of the question (no gold).

Why: in the distillation data most token labels come from non-relevant passages (all "drop") and the
few labelled relevant passages have their gold near the start, so the token head learned to follow the
passage score and the sentence position. Spliced passages put a known answer at a random position next
to text that does not answer, so only the sentence's own content tells them apart. The recipe and its
reasons are in ``training/DATA.md``.

    .venv/bin/python training/build_spliced.py --data .cache/train
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ragprune.pipeline.multihop import expand_query
from ragprune.training.files import read_jsonl, write_jsonl_gz
from ragprune.training.labels import GOLD_SHARE, covered_share

POSITIONS = ("first", "middle", "last")
MAX_CHARS = 900
"""Longest synthetic passage: ~200-230 word pieces, which fits the 256-token window beside a query, so
no label lies beyond the part of the passage that training encodes."""
MAX_BLOCK_CHARS = 600
OFF_TOPIC_TRIES = 20


@dataclass(frozen=True)
class Sentence:
    """One sentence of a pool passage and whether it is gold."""

    text: str
    gold: bool


def sentences_of(passage: dict, gold: list[list[int]] | None) -> list[Sentence]:
    """The passage's sentences (the pipeline's segmentation, stored by ``build_data.py``) with gold flags."""
    text = passage["text"]
    return [
        Sentence(text[s:e], bool(gold) and covered_share((s, e), gold) >= GOLD_SHARE)
        for s, e in passage["sentences"]
    ]


def gold_block(sentences: list[Sentence], rng: random.Random) -> list[Sentence] | None:
    """The gold sentences with 0-2 neighbours each side, or ``None`` if the gold alone is too long."""
    gold = [i for i, s in enumerate(sentences) if s.gold]
    if not gold:
        return None
    first, last = gold[0], gold[-1]
    if sum(len(s.text) + 1 for s in sentences[first : last + 1]) > MAX_BLOCK_CHARS:
        return None
    start, end = max(0, first - rng.randint(0, 2)), min(len(sentences), last + 1 + rng.randint(0, 2))
    while sum(len(s.text) + 1 for s in sentences[start:end]) > MAX_BLOCK_CHARS:
        start, end = (start + 1, end) if start < first else (start, end - 1)
    return sentences[start:end]


def filler_runs(
    record: dict, pool: dict[str, dict], all_pids: list[str], labelled: set[str], rng: random.Random
) -> list[list[Sentence]]:
    """1-3 runs of consecutive non-gold sentences, 1-10 sentences in all, from other passages: off-topic
    ones are drawn from the whole pool except this query's candidates and labelled passages."""
    ranked = sorted(record["candidates"], key=lambda c: -c["teacher"])
    low = [
        c["pid"]
        for c in ranked[len(ranked) // 2 :]
        if c["pid"] in pool and c["pid"] not in labelled and c.get("label") != 1
    ]
    own = labelled | {c["pid"] for c in record["candidates"]}
    wanted, runs = rng.randint(1, 10), []
    for source in range(rng.randint(1, 3)):
        if low and rng.random() < 1 / 3:
            pid = rng.choice(low)
        else:
            drawn = (rng.choice(all_pids) for _ in range(OFF_TOPIC_TRIES))
            pid = next((p for p in drawn if p not in own), None)
            if pid is None:  # a pool that holds little beyond this query's own passages
                continue
        sentences = sentences_of(pool[pid], None)
        share = max(1, (wanted - sum(len(r) for r in runs)) // (3 - source) if source < 2 else wanted)
        start = rng.randrange(len(sentences))
        run = sentences[start : start + share]
        if run:
            runs.append(run)
        if sum(len(r) for r in runs) >= wanted:
            break
    return runs


def assemble(block: list[Sentence], runs: list[list[Sentence]], position: str) -> list[Sentence]:
    """Gold block first, last, or between the filler runs, cut to ``MAX_CHARS`` from the filler's far end."""
    filler = [s for run in runs for s in run]
    if position == "first":
        before, after = [], filler
    elif position == "last":
        before, after = filler, []
    else:
        cut = max(1, len(filler) // 2) if len(filler) > 1 else 0
        before, after = filler[:cut], filler[cut:]
    size = lambda parts: sum(len(s.text) + 1 for s in parts)  # noqa: E731
    while size(before) + size(block) + size(after) > MAX_CHARS and (before or after):
        if after and (len(after) >= len(before) or position == "first"):
            after = after[:-1]
        else:
            before = before[1:]
    return before + block + after


def to_record(qid: str, query: str, sentences: list[Sentence], **extra) -> dict:
    """Join sentences with one space; gold spans are the gold sentences' offsets in the joined text."""
    text, gold, offset = "", [], 0
    for sentence in sentences:
        if text:
            text += " "
            offset += 1
        text += sentence.text
        if sentence.gold:
            gold.append([offset, offset + len(sentence.text)])
        offset += len(sentence.text)
    return {"qid": qid, "query": query, "text": text, "gold": gold, **extra}


def spliced_records(
    records: list[dict], pool: dict[str, dict], variants: int, rng: random.Random
) -> list[dict]:
    """``variants`` spliced passages per gold passage of each record, positions drawn uniformly."""
    out = []
    all_pids = sorted(pool)
    for record in records:
        gold = record.get("gold") or {}
        labelled = {c["pid"] for c in record["candidates"] if c.get("label") is not None} | set(gold)
        for g, (pid, spans) in enumerate(sorted(gold.items())):
            sentences = sentences_of(pool[pid], spans)
            for v in range(variants):
                block = gold_block(sentences, rng)
                if block is None:
                    continue
                runs = filler_runs(record, pool, all_pids, labelled, rng)
                position = rng.choice(POSITIONS)
                assembled = assemble(block, runs, position)
                out.append(
                    to_record(
                        f"{record['qid']}#s{g}.{v}",
                        record["query"],
                        assembled,
                        kind="spliced",
                        position=position,
                        filler=len(assembled) - len(block),
                        sources=len(runs),
                    )
                )
    return out


def hop_records(records: list[dict], pool: dict[str, dict]) -> list[dict]:
    """Second-hop examples from questions with two or more gold paragraphs (see the module docstring)."""
    out = []
    for record in records:
        gold = record.get("gold") or {}
        if record.get("source") != "hotpotqa" or len(gold) < 2:
            continue
        negatives = [c["pid"] for c in record["candidates"] if c.get("label") == 0]
        for a, b in ((a, b) for a in sorted(gold) for b in sorted(gold) if a != b):
            evidence = [s.text for s in sentences_of(pool[a], gold[a]) if s.gold]
            query = expand_query(record["query"], evidence)
            passage = sentences_of(pool[b], gold[b])
            out.append(to_record(f"{record['qid']}#h{a}>{b}", query, passage, kind="hop"))
            for n in negatives[:2]:
                distractor = sentences_of(pool[n], None)
                out.append(to_record(f"{record['qid']}#h{a}>{n}", query, distractor, kind="hop-negative"))
    return out


def build(records: list[dict], pool: dict[str, dict], variants: int, seed: int) -> list[dict]:
    """Spliced passages (seeded) followed by the second-hop examples of ``records``."""
    return spliced_records(records, pool, variants, random.Random(seed)) + hop_records(records, pool)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(".cache/train"), help="build_data.py output folder")
    parser.add_argument("--variants", type=int, default=2, help="spliced passages per gold passage")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)

    pool = {p["pid"]: p for p in read_jsonl(args.data / "pool.jsonl.gz")}
    stats = {}
    for source, target, seed in (
        ("groups.jsonl.gz", "spliced.jsonl.gz", args.seed),
        ("valid_pruning.jsonl.gz", "valid_spliced.jsonl.gz", args.seed + 1),
    ):
        built = build(read_jsonl(args.data / source), pool, args.variants, seed)
        write_jsonl_gz(args.data / target, built)
        stats[target] = {
            "records": len(built),
            "kinds": dict(Counter(r["kind"] for r in built)),
            "positions": dict(Counter(r.get("position") for r in built if r["kind"] == "spliced")),
            "gold_sentences": sum(len(r["gold"]) for r in built),
        }
    (args.data / "spliced_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats, indent=2))
    return stats


if __name__ == "__main__":
    main()
