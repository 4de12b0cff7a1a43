"""training/build_spliced.py: synthetic passages whose gold labels are known by construction."""

from __future__ import annotations

import importlib.util
import random
import sys
from collections import Counter
from pathlib import Path

from ragprune.pipeline.multihop import expand_query
from ragprune.text import split_sentences

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "build_spliced_under_test", ROOT / "training/build_spliced.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _passage(pid: str, text: str) -> dict:
    return {"pid": pid, "text": text, "sentences": [s.to_list() for s in split_sentences(text)]}


ANSWER = "Fleas live up to a year."
POOL = {
    "gold": _passage("gold", f"Fleas are insects. {ANSWER} They bite cats."),
    "other": _passage("other", "Paris is in France. It has many museums. The Seine flows through it."),
    "more": _passage("more", "Python is a language. Guido made it. It is popular. It has types."),
    "low": _passage("low", "Flea markets sell old things. They open on Sundays."),
}
RECORDS = [
    {
        "qid": "nq:1",
        "query": "how long do fleas live",
        "source": "nq",
        "candidates": [
            {"pid": "gold", "teacher": 2.0, "label": 1},
            {"pid": "low", "teacher": -1.0, "label": None},
            {"pid": "x", "teacher": 0.5, "label": None},
        ],
        "gold": {"gold": [[19, 19 + len(ANSWER)]]},
    }
]


def test_spliced_passages_carry_exactly_the_gold_sentence_at_every_position():
    bs = _script()
    records = bs.spliced_records(RECORDS, POOL, variants=60, rng=random.Random(0))
    assert len(records) == 60
    assert set(Counter(r["position"] for r in records)) == {"first", "middle", "last"}
    for record in records:
        assert [record["text"][s:e] for s, e in record["gold"]] == [ANSWER]
        assert len(record["text"]) <= bs.MAX_CHARS
        start = record["gold"][0][0]
        if record["position"] == "first":
            assert ANSWER in record["text"][: start + len(ANSWER)] and start < 20
        if record["position"] == "last" and record["filler"]:
            assert record["text"].rstrip().endswith(("They bite cats.", ANSWER))
    # filler comes from other passages than the gold one, and never from the query's labelled passages
    assert any("Paris" in r["text"] or "Python" in r["text"] for r in records)
    assert any("Flea markets" in r["text"] for r in records)  # same-topic hard negatives


def test_spliced_build_is_deterministic():
    bs = _script()
    first = bs.spliced_records(RECORDS, POOL, variants=5, rng=random.Random(3))
    again = bs.spliced_records(RECORDS, POOL, variants=5, rng=random.Random(3))
    assert first == again


def test_hop_examples_use_the_pipeline_query_expansion():
    bs = _script()
    pool = dict(POOL, bridge=_passage("bridge", "Cats host fleas. Cats purr."))
    record = dict(
        RECORDS[0],
        source="hotpotqa",
        gold={"gold": RECORDS[0]["gold"]["gold"], "bridge": [[0, 16]]},
        candidates=RECORDS[0]["candidates"] + [{"pid": "other", "teacher": 0.0, "label": 0}],
    )
    hops = bs.hop_records([record], pool)
    kinds = Counter(r["kind"] for r in hops)
    assert kinds == {"hop": 2, "hop-negative": 2}
    to_bridge = next(r for r in hops if r["kind"] == "hop" and r["text"].startswith("Cats host"))
    assert to_bridge["query"] == expand_query("how long do fleas live", [ANSWER])
    assert [to_bridge["text"][s:e] for s, e in to_bridge["gold"]] == ["Cats host fleas."]
    assert all(r["gold"] == [] for r in hops if r["kind"] == "hop-negative")


def test_expand_query_skips_empty_evidence():
    assert expand_query(" q ", []) == "q"
    assert expand_query("q", ["a.", " ", "b."]) == "q | a. | b."
