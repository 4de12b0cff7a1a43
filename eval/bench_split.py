"""Benchmark ``ragprune.text.split_sentences``: speed on MS MARCO passages and agreement with the
sentence boundaries of the pruning data sets.

The rules were written while reading the training files' disagreements; the dev files are reported
as held out (read, never used to change a rule). ``pysbd`` and ``blingfire`` are not project
dependencies: when they can be imported (e.g. ``pip install --target DIR pysbd blingfire`` and
``PYTHONPATH=DIR``), they are timed and scored on the same inputs for reference.

    .venv/bin/python eval/bench_split.py [--repeat 20]

Prints markdown tables that name the CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

from ragprune.data import data_root
from ragprune.devices import cpu_name
from ragprune.text import split_sentences

AGREEMENT_FILES = {
    "hotpotqa_train_distractor_100": "train",
    "scifact_rationales_train": "train",
    "nq_oracle_silver_train": "train (naive gold splits)",
    "hotpotqa_dev_distractor_100": "dev, held out",
    "scifact_rationales_dev": "dev, held out",
}


def msmarco_passages(root: Path) -> list[str]:
    """The distinct positive and negative passages of the MS MARCO toy training triples."""
    seen: dict[str, None] = {}
    with open(root / "msmarco" / "triples.toy100.tsv", encoding="utf-8") as f:
        for line in f:
            for passage in line.rstrip("\n").split("\t")[1:]:
                seen.setdefault(passage, None)
    return list(seen)


def joined_context(sentences: list[str]) -> tuple[str, set[int]]:
    """The dataset sentences joined into one text, and the end offset of each (stripped) sentence."""
    text, ends = "", set()
    for sentence in sentences:
        if text and not sentence[:1].isspace():
            text += " "
        text += sentence
        if sentence.strip():
            ends.add(len(text.rstrip()))
    return text, ends


def time_per_passage(split: Callable[[str], object], passages: list[str], repeat: int) -> float:
    """Best-of-``repeat`` mean microseconds per passage."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for passage in passages:
            split(passage)
        best = min(best, time.perf_counter() - t0)
    return best / len(passages) * 1e6


def sentence_ends(split: Callable[[str], list[tuple[int, int]]], text: str) -> set[int]:
    """End offsets (trailing whitespace removed) of the non-blank sentences a splitter finds."""
    return {len(text[:end].rstrip()) for start, end in split(text) if text[start:end].strip()}


def splitters() -> dict[str, Callable[[str], list[tuple[int, int]]]]:
    """Each available splitter as a function from text to ``(start, end)`` offsets."""
    out: dict[str, Callable[[str], list[tuple[int, int]]]] = {
        "ragprune.text.split_sentences": lambda text: [(s.start, s.end) for s in split_sentences(text)]
    }
    try:
        import pysbd

        segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
        out["pysbd 0.3 (char_span=True)"] = lambda text: [(s.start, s.end) for s in segmenter.segment(text)]
    except ImportError:
        pass
    try:
        import blingfire

        out["blingfire 0.1.8"] = lambda text: list(blingfire.text_to_sentences_and_offsets(text)[1])
    except ImportError:
        pass
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    root = data_root()

    passages = msmarco_passages(root)
    mean_chars = sum(map(len, passages)) / len(passages)
    print(f"CPU: {cpu_name()}; Python {platform.python_version()}; one thread")
    print(f"\n## Speed: {len(passages)} MS MARCO passages (mean {mean_chars:.0f} chars)\n")
    print("| splitter | µs / passage | passages / min |")
    print("|---|---|---|")
    available = splitters()
    for name, split in available.items():
        us = time_per_passage(split, passages, args.repeat if name.startswith("ragprune") else 2)
        print(f"| {name} | {us:.1f} | {60e6 / us:,.0f} |")

    print("\n## Scaling on long text (concatenated passages)\n")
    print("| chars | ms | µs / 1k chars |")
    print("|---|---|---|")
    unit = " ".join(passages)
    for copies in (1, 10, 100):
        long_text = " ".join([unit] * copies)
        t0 = time.perf_counter()
        split_sentences(long_text)
        ms = (time.perf_counter() - t0) * 1e3
        print(f"| {len(long_text):,} | {ms:.1f} | {ms * 1e6 / len(long_text):.1f} |")

    print("\n## Agreement with dataset sentence boundaries (training files)\n")
    print("| file | role | gold boundaries | splitter | recall | precision |")
    print("|---|---|---|---|---|---|")
    for name, role in AGREEMENT_FILES.items():
        with open(root / "pruning" / f"{name}.jsonl", encoding="utf-8") as f:
            contexts = [joined_context(c["sentences"]) for line in f for c in json.loads(line)["contexts"]]
        gold_total = sum(len(gold) for _, gold in contexts)
        for splitter_name, split in available.items():
            pred_total = hits = 0
            for text, gold in contexts:
                pred = sentence_ends(split, text)
                pred_total += len(pred)
                hits += len(gold & pred)
            scores = f"{hits / gold_total:.3f} | {hits / pred_total:.3f}"
            print(f"| {name} | {role} | {gold_total} | {splitter_name} | {scores} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
