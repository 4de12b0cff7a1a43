"""Training data in memory and its batches: groups, sampling, collation, optimiser schedule, state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from tiny_models import minilm_tokenizer_path

from ragprune.training.batching import collate_examples, collate_groups
from ragprune.training.checkpoint import TrainState
from ragprune.training.data import Candidate, Group, build_groups, sample_group
from ragprune.training.labels import IGNORE
from ragprune.training.optim import schedule_steps, warmup_linear_decay

TEXTS = {
    "p1": "Fleas live up to a year. Their life cycle depends on temperature.",
    "p2": "The Eiffel Tower is in Paris. It was finished in 1889. It is tall.",
    "p3": "Cats sleep a lot.",
}


@pytest.fixture(scope="module")
def tokenized():
    from ragprune.models import load_tokenizer
    from ragprune.pipeline.encoding import PairTemplate, tokenize_passages

    tokenizer = load_tokenizer(minilm_tokenizer_path())
    passages = tokenize_passages(tokenizer, list(TEXTS.values()), [""] * len(TEXTS))
    return tokenizer, PairTemplate.from_tokenizer(tokenizer), dict(zip(TEXTS, passages))


def _group(n: int, gold: set[str]) -> Group:
    candidates = [Candidate(f"c{i}", float(n - i), np.zeros(1)) for i in range(n)]
    random.Random(0).shuffle(candidates)
    return Group("q", "query", np.zeros(2, dtype=np.int64), candidates, gold)


def test_sample_group_keeps_gold_and_the_teachers_top_and_sorts_by_teacher():
    group = _group(20, gold={"c15"})
    for seed in range(5):
        chosen = sample_group(group, 8, random.Random(seed), teacher_top=4)
        pids = [c.pid for c in chosen]
        assert len(pids) == 8 == len(set(pids))
        assert {"c15", "c0", "c1", "c2", "c3"} <= set(pids)
        assert [c.teacher for c in chosen] == sorted((c.teacher for c in chosen), reverse=True)
    assert sample_group(group, 8, random.Random(1)) == sample_group(group, 8, random.Random(1))
    assert {c.pid for c in sample_group(group, 3, random.Random(0), teacher_top=4)} == {"c15", "c0", "c1"}


def test_build_groups_zscores_the_teacher_and_labels_gold_silver_and_irrelevant(tokenized):
    _, _, passages = tokenized
    pool_index = {pid: i for i, pid in enumerate(TEXTS)}
    record = {
        "qid": "q",
        "query": "fleas",
        "candidates": [
            {"pid": "p1", "teacher": 3.0, "mpnet": 0.7},
            {"pid": "p2", "teacher": 1.0, "mpnet": 0.2},
            {"pid": "p3", "teacher": 2.0, "mpnet": 0.1, "label": 1},
            {"pid": "unknown", "teacher": 9.0},  # not in the pool: dropped
        ],
        "gold": {},
    }
    options = {"silver_margin": 0.1, "silver_min_cos": 0.5, "silver_weight": 0.5, "irrelevant_weight": 0.25}
    cosines = {("q", "p1"): [0.6, 0.3]}
    (group,) = build_groups(
        [record], pool_index, list(passages.values()), {"q": np.zeros(2)}, cosines, **options
    )
    by_pid = {c.pid: c for c in group.candidates}
    assert set(by_pid) == {"p1", "p2", "p3"}
    assert np.mean([c.teacher for c in group.candidates]) == pytest.approx(0.0, abs=1e-6)
    assert by_pid["p1"].labels.tolist() == [1.0, 0.0] and by_pid["p1"].weight == 0.5  # silver
    assert by_pid["p2"].labels.sum() == 0 and by_pid["p2"].weight == 0.25  # irrelevant
    assert by_pid["p3"].weight == 0.0  # judged relevant, not the teacher's top: sentences unknown
    record["gold"] = {"p2": [[0, 29]]}
    (group,) = build_groups(
        [record], pool_index, list(passages.values()), {"q": np.zeros(2)}, cosines, **options
    )
    by_pid = {c.pid: c for c in group.candidates}
    assert by_pid["p2"].labels.tolist() == [1.0, 0.0, 0.0] and by_pid["p2"].weight == 1.0
    assert by_pid["p1"].labels.sum() == 0 and group.gold == {"p2"}  # gold named: no silver
    weighted = dict(record, source="scifact")  # a source's gold passages weighed up, nothing else
    groups = build_groups(
        [weighted, dict(record, qid="q2", source="nq")],
        pool_index,
        list(passages.values()),
        {"q": np.zeros(2), "q2": np.zeros(2)},
        cosines,
        **options,
        gold_weights={"scifact": 3.0},
    )
    weights = [{c.pid: c.weight for c in group.candidates} for group in groups]
    assert weights == [{"p1": 0.25, "p2": 3.0, "p3": 0.0}, {"p1": 0.25, "p2": 1.0, "p3": 0.0}]
    assert (
        build_groups([dict(record, candidates=record["candidates"][:1])], pool_index, [], {}, {}, **options)
        == []
    )


def test_collate_groups_pads_rows_and_carries_the_rank_targets(tokenized):
    tokenizer, template, passages = tokenized
    query = np.asarray(tokenizer("fleas", add_special_tokens=False)["input_ids"])
    groups = [
        Group("a", "fleas", query, [], {"p1"}),
        Group("b", "fleas", query[:1], [], set()),
    ]
    chosen = [
        [Candidate("p1", 1.0, np.ones(2)), Candidate("p3", -1.0, np.zeros(1), 0.25)],
        [Candidate("p2", 0.5, np.array([1.0, 0.0, 0.0])), Candidate("p1", 0.1, np.zeros(2), 0.5)],
    ]
    batch = collate_groups(groups, chosen, passages.__getitem__, template, 64, tokenizer.pad_token_id)
    assert batch["teacher"].tolist() == [[1.0, -1.0], [0.5, pytest.approx(0.1)]]
    assert batch["gold"].tolist() == [[True, False], [False, False]]
    assert batch["passage_weight"].tolist() == [1.0, 0.25, 1.0, 0.5]
    assert batch["sentence_labels"].tolist() == [
        [1, 1, IGNORE],
        [0, IGNORE, IGNORE],
        [1, 0, 0],
        [0, 0, IGNORE],
    ]
    lengths = batch["attention_mask"].sum(1)
    assert batch["input_ids"].shape == (4, int(lengths.max()))
    short = int(lengths.argmin())
    assert (batch["input_ids"][short, lengths[short] :] == tokenizer.pad_token_id).all()
    assert (batch["sentence_ids"][short, lengths[short] :] == -1).all()
    with pytest.raises(ValueError, match="same number of candidates"):
        collate_groups(groups, [chosen[0], chosen[1][:1]], passages.__getitem__, template, 64, 0)


def test_collate_examples_labels_each_row_up_to_its_sentences(tokenized):
    tokenizer, template, passages = tokenized
    examples = [(np.asarray([2000]), passages["p3"], np.ones(1), 1.0)]
    batch = collate_examples(examples, template, 64, tokenizer.pad_token_id)
    assert batch["sentence_labels"].tolist() == [[1]]
    assert batch["input_ids"].dtype == torch.int64 and batch["passage_weight"].dtype == torch.float32


def test_schedule_warms_up_then_decays_to_zero():
    assert schedule_steps(groups=100, queries_per_step=16, epochs=3, max_steps=0, warmup=0.05) == (21, 1)
    assert schedule_steps(groups=100, queries_per_step=16, epochs=3, max_steps=10, warmup=0.2) == (10, 2)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = warmup_linear_decay(optimizer, warmup_steps=2, total_steps=6)
    rates = []
    for _ in range(6):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25])


def test_train_state_keeps_the_best_weights_only():
    model = torch.nn.Linear(1, 1)
    state = TrainState()
    assert state.keep_if_best(model, 0.5)
    with torch.no_grad():
        model.weight.fill_(3.0)
    assert not state.keep_if_best(model, 0.5)  # ties keep the earlier epoch
    assert state.best_ndcg == 0.5 and state.best_state["weight"].item() != 3.0


def test_checkpoint_round_trip_restores_state_and_names_changed_settings(tmp_path, caplog):
    from ragprune.training.checkpoint import load_checkpoint, save_checkpoint

    def parts(seed: int):
        torch.manual_seed(seed)
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
        return model, optimizer, warmup_linear_decay(optimizer, 1, 4)

    model, optimizer, scheduler = parts(0)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    scheduler.step()
    rng = random.Random(3)
    rng.random()
    state = TrainState(step=1, epoch=1, history=[{"epoch": 0}], skipped=2)
    state.keep_if_best(model, 0.4)
    save_checkpoint(tmp_path / "c.pt", model, optimizer, scheduler, state, rng, {"tau": 1.0, "lr": 0.1})

    fresh, fresh_optimizer, fresh_scheduler = parts(1)
    fresh_rng = random.Random(0)
    loaded = load_checkpoint(
        tmp_path / "c.pt",
        fresh,
        fresh_optimizer,
        fresh_scheduler,
        fresh_rng,
        torch.device("cpu"),
        {"tau": 0.5, "lr": 0.1},
    )
    assert (loaded.step, loaded.epoch, loaded.history, loaded.skipped, loaded.best_ndcg) == (
        1,
        1,
        [{"epoch": 0}],
        2,
        0.4,
    )
    torch.testing.assert_close(fresh.weight, model.weight)
    assert fresh_rng.random() == rng.random() and fresh_scheduler.get_last_lr() == scheduler.get_last_lr()
    assert "'tau': (1.0, 0.5)" in caplog.text and "'lr'" not in caplog.text


def test_heldout_sources_name_every_heldout_row_in_order():
    from ragprune.training.data import Example, TrainingData

    def candidate(pid):
        return Candidate(pid, 0.0, np.ones(1))

    groups = [
        Group(
            "s:1", "q1", np.zeros(1), [candidate("a"), candidate("b"), candidate("c")], {"a", "c"}, "scifact"
        ),
        Group("w:1", "q2", np.zeros(1), [candidate("d"), candidate("e")], {"e"}, "wikiqa"),
        Group("n:1", "q3", np.zeros(1), [candidate("f")], set(), "nq"),  # no gold: no row
    ]
    pids = "abcdef"
    spliced = [Example(np.zeros(1), "spliced passage", np.ones(1), 1.0)]
    data = TrainingData(
        {}, [], [], groups, {p: i for i, p in enumerate(pids)}, list(pids), spliced, spliced, ["first"]
    )
    rows = data.heldout_examples()
    assert [row.passage for row in rows] == ["spliced passage", "a", "c", "e"]
    assert data.heldout_sources() == ["spliced", "scifact", "scifact", "wikiqa"]
