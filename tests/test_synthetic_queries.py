"""Synthetic training queries (``ragprune.training.synthetic``, ``training/synthetic_queries.py``) and their
``build_data.py --synthetic`` groups: offline, no LM (a fake generator), no shared data."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from ragprune.training.decontam import normalise_query
from ragprune.training.synthetic import (
    DEFAULT_PROMPT,
    SHOTS,
    EvalOverlap,
    append_records,
    build_messages,
    clean_generation,
    clean_records,
    degenerate_reason,
    read_records,
    synthetic_qid,
    teacher_agreement,
)

_TRAINING = Path(__file__).resolve().parents[1] / "training"
PASSAGE = (
    "The Great Barrier Reef is the world's largest coral reef system, composed of over 2,900 individual "
    "reefs off the coast of Queensland, Australia."
)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", _TRAINING / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sq():
    return _load("synthetic_queries")


@pytest.fixture(scope="module")
def bd():
    return _load("build_data")


# --- prompt -------------------------------------------------------------------------------------------


def test_prompt_has_system_shots_and_passage_last():
    messages = build_messages("  Some   passage\ntext.  ")
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * len(SHOTS) + ["user"]
    assert messages[-1]["content"].startswith("Passage: Some passage text.\n")
    assert [m["content"] for m in messages if m["role"] == "assistant"] == [q for _, q in SHOTS]


def test_prompt_cuts_long_passages_at_a_space_and_rejects_blank_ones():
    messages = build_messages("word " * 400)
    passage = messages[-1]["content"].split("\n")[0].removeprefix("Passage: ")
    assert len(passage) <= 1000 and passage.endswith("word")
    with pytest.raises(ValueError):
        build_messages("  \n ")
    with pytest.raises(KeyError):
        build_messages(PASSAGE, "no-such-prompt")


def test_qid_names_prompt_and_passage():
    assert synthetic_qid("p0123", DEFAULT_PROMPT) == f"syn:{DEFAULT_PROMPT}:p0123"


# --- cleaning -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"What is the largest coral reef?"', "What is the largest coral reef?"),
        ("Query: where is the great barrier reef\nExplanation: ...", "where is the great barrier reef"),
        ("\n\n1. how many reefs   make up the reef", "how many reefs make up the reef"),
        ("", ""),
    ],
)
def test_clean_generation(raw, expected):
    assert clean_generation(raw) == expected


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "empty"),
        ("reef?", "too_short"),
        ("what " + "is the reef like " * 10, "too_long"),
        ("what reef reef reef reef is", "repeated_tokens"),
        ("what is the the reef the reef the reef", "repeated_tokens"),
        ("what role of the pope in the rise of the church of the holy roman empire", None),
        ("the great barrier reef in australia", "not_a_query"),
        ("What's the answer?", "generic"),
        ("what is this passage about", "generic"),
        ("The Great Barrier Reef is the world's largest coral reef system?", "copies_passage"),
        ("is the world's largest coral reef system composed of over 2,900 reefs?", "copies_passage"),
        ("where is the great barrier reef", None),
        ("largest coral reef in the world?", None),
    ],
)
def test_degenerate_reason(query, reason):
    assert degenerate_reason(query, PASSAGE) == reason


def test_demonstration_topic_only_counts_when_the_passage_lacks_it():
    topics = frozenset({"eiffel"})
    assert degenerate_reason("what is the tax on the eiffel tower", PASSAGE, topics) == "echoes_demonstration"
    eiffel = "The Eiffel Tower was built for the 1889 World's Fair in Paris."
    assert degenerate_reason("when was the eiffel tower built", eiffel, topics) is None
    assert degenerate_reason("what is the tax on the eiffel tower", PASSAGE) is None


def test_eval_overlap_exact_near_and_distinct():
    overlap = EvalOverlap({normalise_query("What is the cost of a new roof?"), "who founded rome"})
    assert overlap.match("what is the COST of a new roof") == "eval_exact"
    assert overlap.match("cost of new roofs") == "eval_near"  # same content words
    assert overlap.match("what is the cost of a new car") is None
    assert overlap.match("when was rome founded") == "eval_near"  # {rome, founded} both ways
    assert overlap.match("who founded the roman empire") is None  # 1 of 4 content words shared
    assert EvalOverlap(set()).match("anything at all") is None


def test_clean_records_reasons_dedup_and_order():
    passages = {"p1": PASSAGE, "p2": "Rome was founded in 753 BC.", "p3": "Other text.", "p4": "More."}
    raw = [
        {"qid": "q1", "query": '"where is the great barrier reef"', "pid": "p1"},
        {"qid": "q1", "query": "repeat of q1", "pid": "p1"},
        {"qid": "q2", "query": "who founded rome?", "pid": "p2"},  # an evaluation query
        {"qid": "q3", "query": "what is the answer", "pid": "p3"},
        {"qid": "q4", "query": "how old is the city of rome", "pid": "p4"},
        {"qid": "q5", "query": "How old is the city of Rome?", "pid": "p2"},  # same query, other passage
        {"qid": "q6", "query": "who designed the eiffel tower", "pid": "p3", "prompt_id": DEFAULT_PROMPT},
    ]
    result = clean_records(raw, passages, EvalOverlap({"who founded rome"}))
    assert [r["qid"] for r in result.kept] == ["q1"]
    assert result.kept[0]["query"] == "where is the great barrier reef"
    assert result.kept[0]["raw"] == '"where is the great barrier reef"'
    assert result.dropped == {
        "repeated_qid": 1,
        "eval_exact": 1,
        "generic": 1,
        "duplicate": 2,
        "echoes_demonstration": 1,
    }


def test_teacher_agreement_top_k():
    scores = np.array([0.9, 0.1, 0.5, 0.7, 0.5])
    assert teacher_agreement(scores, 0, k=1)
    assert not teacher_agreement(scores, 2, k=2)
    assert teacher_agreement(scores, 4, k=3)  # tied third
    assert not teacher_agreement(scores, 1, k=3)
    with pytest.raises(IndexError):
        teacher_agreement(scores, 5)
    with pytest.raises(ValueError):
        teacher_agreement(scores, 0, k=0)


# --- resumable output ---------------------------------------------------------------------------------


class FakeGenerator:
    """Returns ``question about <first word>`` per passage and records what it was asked."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_after = fail_after

    def __call__(self, passages):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt
        self.calls.append(list(passages))
        return [f"what about {p.split()[0]}" for p in passages]


def _passages(n: int) -> list[dict]:
    return [{"pid": f"p{i:03d}", "text": f"w{i} " + "x " * (i % 5), "source": "dl22"} for i in range(n)]


def test_generation_resumes_where_it_stopped(sq, tmp_path):
    out = tmp_path / "raw.jsonl.gz"
    passages = _passages(10)
    first = FakeGenerator(fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        sq.run_generation(passages, out, first, DEFAULT_PROMPT, batch_size=3)
    assert len(read_records(out)) == 6
    second = FakeGenerator()
    assert sq.run_generation(passages, out, second, DEFAULT_PROMPT, batch_size=3) == 4
    records = read_records(out)
    assert sorted(r["pid"] for r in records) == [p["pid"] for p in passages]
    assert sum(len(c) for c in second.calls) == 4
    assert all(r["query"] == f"what about w{int(r['pid'][1:])}" for r in records)
    assert set(records[0]) == {"qid", "query", "pid", "source", "prompt_id"}
    assert sq.run_generation(passages, out, FakeGenerator(), DEFAULT_PROMPT, batch_size=3) == 0


def test_generation_limit_and_damaged_tail(sq, tmp_path):
    out = tmp_path / "raw.jsonl.gz"
    assert sq.run_generation(_passages(10), out, FakeGenerator(), DEFAULT_PROMPT, batch_size=4, limit=5) == 5
    with open(out, "ab") as handle:  # a kill in the middle of a write
        handle.write(gzip.compress(b'{"qid": "half')[:20])
    assert len(read_records(out)) == 5
    assert sq.run_generation(_passages(10), out, FakeGenerator(), DEFAULT_PROMPT, batch_size=4) == 5
    assert len(read_records(out)) == 10


def test_append_then_read_is_one_stream(tmp_path):
    out = tmp_path / "a.jsonl.gz"
    append_records(out, [{"a": 1}])
    append_records(out, [])
    append_records(out, [{"a": 2}, {"a": 3}])
    with gzip.open(out, "rt") as handle:
        assert [json.loads(line)["a"] for line in handle] == [1, 2, 3]


# --- build_data --synthetic ---------------------------------------------------------------------------


def test_synthetic_source_becomes_groups_with_the_positive_labelled(bd, tmp_path):
    pool = bd.Pool()
    pid = pool.add(PASSAGE, "dl22", "d1")
    other = pool.add("Rome was founded in 753 BC.", "dl22", "d2")
    path = tmp_path / "queries.jsonl.gz"
    rows = [
        {"qid": "syn:x:" + pid, "query": "where is the great barrier reef", "pid": pid, "source": "dl22"},
        {"qid": "syn:x:" + other, "query": "when was rome founded", "pid": other, "source": "dl22"},
        {"qid": "syn:x:pmissing", "query": "what is missing", "pid": "pmissing", "source": "dl22"},
    ]
    with gzip.open(path, "wt") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    groups, skipped = bd.synthetic_groups(pool, path, banned={"when was rome founded"})
    assert skipped == {"pid_not_in_pool": 1, "eval_query": 1}
    assert len(groups) == 1
    group = groups[0]
    assert (group.qid, group.query, group.source) == (rows[0]["qid"], rows[0]["query"], "synthetic")
    assert group.labels == {pid: 1} and group.gold == {}
    scores = bd.bm25_candidates(pool, groups, depth=5, floor_depth=10)
    assert pid in group.candidates and group.labels[pid] == 1
    assert bd.candidate_labels(group)[group.candidates.index(pid)] == 1
    assert scores[group.qid].shape == (len(group.candidates),)


def test_agreement_filter_keeps_only_groups_whose_positive_the_teacher_ranks_high(bd):
    keep = bd.Group("syn:a", "q", "synthetic", labels={"p1": 1}, candidates=["p0", "p1", "p2"])
    drop = bd.Group("syn:b", "q", "synthetic", labels={"p2": 1}, candidates=["p0", "p1", "p2"])
    real = bd.Group("nq:1", "q", "nq", labels={"p2": 1}, candidates=["p0", "p1", "p2"])
    teacher = {
        "syn:a": np.array([0.9, 0.8, 0.1]),
        "syn:b": np.array([0.9, 0.8, 0.1]),
        "nq:1": np.array([0.9, 0.8, 0.1]),
    }
    kept, dropped = bd.synthetic_agreement([keep, drop, real], teacher, k=2)
    assert [g.qid for g in kept] == ["syn:a", "nq:1"]
    assert dropped == 1


# --- which passages -----------------------------------------------------------------------------------


def _write_gz(path: Path, records: list[dict]) -> None:
    with gzip.open(path, "wt") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)


def test_eligible_passages_follow_the_split_rule(sq, tmp_path):
    data, root = tmp_path / "train", tmp_path / "shared"
    data.mkdir()
    for rel in ("trec-dl/dl19", "trec-dl/dl20", "beir/scifact/qrels"):
        (root / rel).mkdir(parents=True)
    texts = {
        "pdl22": ("dl22", ["msmarco_passage_1"], "A training passage."),
        "pdl21": ("dl21", ["msmarco_passage_2"], "A validation passage."),
        "ptoy": ("msmarco-toy", ["msmarco-toy:1+"], "A toy passage."),
        "pheld": ("nq", ["nq-1#0.0"], "A held-out window."),
        "peval": ("dl22", ["msmarco_passage_3"], "An  evaluation passage."),
        "ptest": ("scifact", ["12_777#0.0"], "A test abstract window."),
        "ptrain": ("scifact", ["13_888#0.0"], "A train abstract window."),
    }
    pool = [{"pid": p, "text": t, "source": s, "ids": i, "sentences": []} for p, (s, i, t) in texts.items()]
    _write_gz(data / "pool.jsonl.gz", pool)
    _write_gz(data / "valid_pruning.jsonl.gz", [{"candidates": [{"pid": "pheld", "label": 1}], "gold": {}}])
    _write_gz(data / "valid_dl21.jsonl.gz", [{"candidates": [{"pid": "pdl21", "label": 2}]}])
    with gzip.open(root / "trec-dl/dl19/passages.tsv.gz", "wt") as handle:
        handle.write("7\tan evaluation passage.\n")
    with gzip.open(root / "trec-dl/dl20/passages.tsv.gz", "wt") as handle:
        handle.write("8\tsomething else\n")
    (root / "beir/scifact/qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\n1\t777\t1\n")
    kept, excluded = sq.eligible_passages(data, root)
    assert sorted(p["pid"] for p in kept) == ["pdl22", "ptrain"]
    assert excluded == {
        "source_dl21": 1,
        "source_msmarco-toy": 1,
        "validation_candidate": 1,
        "dl19_dl20_passage": 1,
        "scifact_test_abstract": 1,
    }
