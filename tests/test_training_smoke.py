"""CPU smoke runs of the training scripts: a tiny backbone, a handful of groups, two steps."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import tiny_encoder_config

from ragprune.models import RerankPruneModel
from ragprune.pipeline import RerankPruner
from ragprune.training.config import ROUND_THRESHOLDS, TrainConfig
from ragprune.training.labels import sentence_labels

ROOT = Path(__file__).resolve().parents[1]
PASSAGES = {
    "p1": "Fleas live up to a year. Their life cycle depends on temperature.",
    "p2": "The Eiffel Tower is in Paris. It was finished in 1889.",
    "p3": "Cats sleep a lot. Dogs bark.",
    "p4": "Python is a programming language. It was created by Guido van Rossum.",
    "p5": "Mount Everest is the highest mountain. It lies in the Himalaya.",
}
QUERIES = {
    "q1": ("how long do fleas live", "p1"),
    "q2": ("when was the eiffel tower finished", "p2"),
    "q3": ("who created python", "p4"),
    "q4": ("highest mountain", "p5"),
}


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"ragprune_{name}", ROOT / "training" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def _write(path: Path, records: list[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


@pytest.fixture()
def tiny_training_data(tmp_path, tiny_model_dir) -> tuple[Path, Path]:
    from transformers import BertConfig, BertModel

    from ragprune.models import load_tokenizer
    from ragprune.text import split_sentences

    data = tmp_path / "data"
    data.mkdir()
    pool = [
        {"pid": pid, "text": text, "sentences": [s.to_list() for s in split_sentences(text)], "source": "toy"}
        for pid, text in PASSAGES.items()
    ]
    groups, sentences = [], []
    for qid, (query, gold_pid) in QUERIES.items():
        candidates = [
            {
                "pid": pid,
                "bm25": 1.0,
                "minilm": 0.1,
                "mpnet": 0.1,
                "teacher": 1.0 if pid == gold_pid else 0.0,
                "label": None,
            }
            for pid in PASSAGES
        ]
        gold = {gold_pid: [pool[list(PASSAGES).index(gold_pid)]["sentences"][0]]} if qid != "q4" else {}
        groups.append({"qid": qid, "query": query, "source": "toy", "candidates": candidates, "gold": gold})
        sentences += [{"qid": qid, "pid": pid, "cos": [0.5, 0.2]} for pid in PASSAGES]
    graded = [dict(c, label=int(c["pid"] == "p1") * 2) for c in groups[0]["candidates"]]
    valid = [dict(groups[0], candidates=graded)]
    _write(data / "pool.jsonl.gz", pool)
    _write(data / "groups.jsonl.gz", groups)
    _write(data / "sentences.jsonl.gz", sentences)
    _write(data / "valid_dl21.jsonl.gz", valid)
    _write(data / "valid_pruning.jsonl.gz", groups[:2])
    _load_script("build_spliced").main(["--data", str(data), "--variants", "3"])

    torch.manual_seed(0)
    backbone = tmp_path / "backbone"
    BertModel(tiny_encoder_config(BertConfig, num_hidden_layers=1)).save_pretrained(backbone)
    load_tokenizer(tiny_model_dir).save_pretrained(backbone)
    return data, backbone


def test_training_smoke_run_saves_a_loadable_model_and_resumes(tiny_training_data, tmp_path):
    data, backbone = tiny_training_data
    train = _load_script("train")
    out = tmp_path / "out"
    argv = [
        "--data",
        str(data),
        "--backbone",
        str(backbone),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--epochs",
        "2",
        "--max-steps",
        "2",
        "--queries-per-step",
        "2",
        "--group-size",
        "3",
        "--max-length",
        "64",
    ]
    summary = train.main(argv)
    assert 0.0 <= summary["best_dl21_ndcg@10"] <= 1.0
    assert (out / "checkpoint.pt").is_file()
    pruner = RerankPruner.load(out / "model", device="cpu")
    assert pruner.threshold == summary["threshold"]["threshold"]
    assert set(summary["threshold"]["heldout_pruning"]["by_source"]) == {"spliced", "toy"}
    result = pruner.process("fleas", list(PASSAGES.values()))
    assert len(result) == len(PASSAGES)
    calibration = pruner.model.config.calibration
    assert np.isfinite(calibration.scale) and np.isfinite(calibration.bias)
    scale, bias = pruner.model.config.provenance.sentence_calibration
    assert np.isfinite(scale) and np.isfinite(bias)
    assert pruner.threshold in ROUND_THRESHOLDS + (0.0,)
    # the whole configuration travels with the model: a file beside the weights and the provenance
    config = TrainConfig.load(out / "model")
    assert config == train.parse_args(argv)
    assert config.backbone == backbone and config.max_steps == 2 and config.group_size == 3
    assert pruner.model.config.provenance.train_config == config.to_dict()
    resumed = train.main(argv)  # the checkpoint is at max-steps already: resumes, trains nothing more
    assert resumed["history"][: len(summary["history"])] == summary["history"]


def test_a_listwise_head_trains_with_the_encoder(tiny_training_data, tmp_path):
    data, backbone = tiny_training_data
    train = _load_script("train")
    out = tmp_path / "joint"
    argv = ["--data", str(data), "--backbone", str(backbone), "--out", str(out), "--device", "cpu"]
    argv += ["--epochs", "1", "--max-steps", "3", "--queries-per-step", "2", "--group-size", "3"]
    summary = train.main(argv + ["--max-length", "64", "--list-weight", "1"])
    (epoch,) = summary["history"]
    assert {"dl21_ndcg@10", "dl21_ndcg@10_full", "dl21_ndcg@10_listwise"} <= set(epoch)
    assert all(0.0 <= epoch[k] <= 1.0 for k in ("dl21_ndcg@10_full", "dl21_ndcg@10_listwise"))
    model = RerankPruner.load(out / "model", device="cpu").model
    head = model.heads["listwise"]
    assert float(head.gate.detach()) != 0.0  # trained: the residual gate left its initial 0
    with RerankPruner.load(out / "model", device="cpu", mode="full") as pruner:
        assert len(pruner.process("fleas", list(PASSAGES.values()))) == len(PASSAGES)


def test_gold_source_weights_reach_the_training_groups(tiny_training_data, tmp_path):
    from ragprune.models import load_tokenizer
    from ragprune.training.data import load_training_data

    data, backbone = tiny_training_data
    tokenizer = load_tokenizer(backbone)
    config = TrainConfig(data=data, backbone=backbone, out=tmp_path, gold_source_weights=("toy=2",))
    loaded = load_training_data(config, tokenizer)
    gold = [c.weight for g in loaded.train_groups for c in g.candidates if c.pid in g.gold]
    assert gold and set(gold) == {2.0}
    # every held-out row is named by its dataset, in heldout_examples' order: spliced passages first
    sources = loaded.heldout_sources()
    assert len(sources) == len(loaded.heldout_examples()) > len(loaded.valid_spliced)
    assert sources == ["spliced"] * len(loaded.valid_spliced) + ["toy"] * (
        len(sources) - len(loaded.valid_spliced)
    )
    with pytest.raises(ValueError, match=r"names \['nq'\], which no gold-labelled training record has"):
        load_training_data(
            TrainConfig(data=data, backbone=backbone, out=tmp_path, gold_source_weights=("nq=2",)), tokenizer
        )


def test_silver_labels_follow_the_best_sentence():
    from ragprune.pipeline.encoding import TokenizedPassage
    from ragprune.types import Span

    passage = TokenizedPassage(None, None, [Span(0, 5), Span(6, 10), Span(11, 20)], 0)
    labels = sentence_labels(passage, None, [0.2, 0.55, 0.5], relevant=True, margin=0.1)
    assert labels.tolist() == [0.0, 1.0, 1.0]
    assert sentence_labels(passage, None, [0.2, 0.55, 0.5], relevant=False, margin=0.1).sum() == 0
    gold = sentence_labels(passage, [[6, 10]], None, relevant=True, margin=0.1)
    assert gold.tolist() == [0.0, 1.0, 0.0]


def test_student_scores_cover_every_candidate_and_mix_into_the_teacher(
    tiny_training_data, tiny_model_dir, tmp_path
):
    data, _ = tiny_training_data
    scores_path = tmp_path / "scores.jsonl.gz"
    _load_script("score_candidates").main(
        ["--model", str(tiny_model_dir), "--data", str(data), "--out", str(scores_path), "--device", "cpu"]
    )
    with gzip.open(scores_path, "rt") as handle:
        scores = {r["qid"]: r["scores"] for r in map(json.loads, handle)}
    with gzip.open(data / "groups.jsonl.gz", "rt") as handle:
        groups = [json.loads(line) for line in handle]
    assert all(set(scores[g["qid"]]) == {c["pid"] for c in g["candidates"]} for g in groups)

    mix = _load_script("mix_teacher")
    out = tmp_path / "mixed"
    assert mix.main(["--data", str(data), "--scores", str(scores_path), "--out", str(out)]) in mix.WEIGHTS
    assert (
        mix.main(["--data", str(data), "--scores", str(scores_path), "--out", str(out), "--weight", "0"]) == 0
    )
    with gzip.open(out / "groups.jsonl.gz", "rt") as handle:
        mixed = [json.loads(line) for line in handle]
    for before, after in zip(groups, mixed, strict=True):
        teacher = [c["teacher"] for c in before["candidates"]]
        z = (teacher - np.mean(teacher)) / (np.std(teacher) + 1e-6)
        assert [c["teacher"] for c in after["candidates"]] == pytest.approx(z, abs=1e-3)
        assert [c["student"] for c in after["candidates"]] == [
            scores[before["qid"]][c["pid"]] for c in before["candidates"]
        ]
    assert (out / "pool.jsonl.gz").is_file() and (out / "teacher_mix.json").is_file()


def test_pseudo_queries_take_one_eligible_sentence_per_passage_deterministically():
    ict = _load_script("build_ict")
    long_sentence = "This sentence has quite a few words in it so it is eligible. "
    pool = [{"pid": f"p{i}", "text": long_sentence * 2 + f"Short {i}. " + "Tiny."} for i in range(6)] + [
        {"pid": "two", "text": long_sentence * 2}
    ]  # two sentences only: never a source
    chosen = ict.pseudo_queries(pool, count=4, seed=1)
    assert chosen == ict.pseudo_queries(pool, count=4, seed=1)
    assert len(chosen) == 4 and len({pid for pid, _ in chosen}) == 4
    assert all(pid != "two" and sentence == long_sentence.strip() for pid, sentence in chosen)
    assert ict.pseudo_queries(pool, count=4, seed=2) != chosen
    excluded = frozenset(f"p{i}" for i in range(4))
    assert {pid for pid, _ in ict.pseudo_queries(pool, count=4, seed=1, exclude=excluded)} == {"p4", "p5"}


def test_greedy_soup_averages_ingredients_and_saves_a_calibrated_model(tiny_training_data, tmp_path):
    data, backbone = tiny_training_data
    train, soup = _load_script("train"), _load_script("soup")
    folders = []
    for seed in ("1", "2"):
        out = tmp_path / f"run{seed}"
        train.main(
            ["--data", str(data), "--backbone", str(backbone), "--out", str(out), "--device", "cpu"]
            + ["--epochs", "1", "--max-steps", "2", "--queries-per-step", "2", "--group-size", "3"]
            + ["--max-length", "64", "--seed", seed]
            + ["--target-recall", "0.8", "--round-thresholds", "0.2", "0.3"]
        )
        folders.append(out / "model")
    models = [RerankPruneModel.from_pretrained(f) for f in folders]
    mean = soup.average(models)
    for key, value in mean.state_dict().items():
        assert torch.allclose(value, (models[0].state_dict()[key] + models[1].state_dict()[key]) / 2)

    summary = soup.main(
        ["--models", *map(str, folders), "--data", str(data), "--out", str(tmp_path / "soup")]
    )
    assert 1 <= len(summary["soup"]["ingredients"]) <= 2
    assert summary["best_dl21_ndcg@10"] >= max(summary["soup"]["ingredient_dl21_ndcg@10"].values())
    pruner = RerankPruner.load(tmp_path / "soup" / "model", device="cpu")
    assert pruner.threshold == summary["threshold"]["threshold"]
    # thresholded as the ingredients' runs were, not with train.py's defaults
    settings = TrainConfig.load(tmp_path / "soup" / "model")
    assert (settings.target_recall, settings.round_thresholds) == (0.8, (0.2, 0.3))
    assert settings.init == folders[0] and settings.data == data


def test_paragraph_coverage_counts_questions_whose_gold_paragraphs_all_rank_high(pruner, tmp_path):
    coverage = _load_script("paragraph_coverage").coverage
    contexts = [
        {"title": f"t{i}", "sentences": [text], "gold_sentence_ids": []}
        for i, text in enumerate(PASSAGES.values())
    ]
    gold_everywhere = [dict(c, gold_sentence_ids=[0]) for c in contexts]
    records = [
        {"id": "a", "source": "toy", "question": "fleas", "answers": [], "contexts": gold_everywhere},
        {
            "id": "b",
            "source": "toy",
            "question": "fleas",
            "answers": [],
            "contexts": gold_everywhere[:2] + contexts[2:],
        },
        {
            "id": "c",
            "source": "toy",
            "question": "fleas",
            "answers": [],
            "contexts": contexts,
        },  # no gold: skipped
    ]
    path = tmp_path / "pruning.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = coverage(pruner, path, ks=(2, len(PASSAGES)))
    assert result["questions"] == 2
    assert result["all_gold_in_top2"] <= 0.5  # question a has 5 gold paragraphs: never all in a top 2
    assert result[f"all_gold_in_top{len(PASSAGES)}"] == 1.0


def test_train_py_hands_tau_and_gold_mix_to_the_rank_loss(tiny_training_data, tmp_path, monkeypatch):
    """The first default model was trained with ``--tau`` silently ignored: the loss must see it."""
    data, backbone = tiny_training_data
    train = _load_script("train")
    seen = []

    class Recording(train.ListwiseDistillationLoss):
        def forward(self, scores, teacher, gold=None):
            seen.append((self.temperature, self.gold_mix, self.target(teacher, gold)))
            return super().forward(scores, teacher, gold)

    monkeypatch.setattr(train, "ListwiseDistillationLoss", Recording)
    train.main(
        ["--data", str(data), "--backbone", str(backbone), "--out", str(tmp_path / "out"), "--device", "cpu"]
        + ["--epochs", "1", "--max-steps", "1", "--queries-per-step", "2", "--group-size", "3"]
        + ["--max-length", "64", "--tau", "0.25", "--gold-mix", "0.0", "--no-calibrate-sentences"]
    )
    ((temperature, gold_mix, target),) = seen
    assert (temperature, gold_mix) == (0.25, 0.0)
    assert target.max() > 0.9  # z-scored teacher at temperature 0.25: nearly all mass on the top


def _sweep(variant: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "training/gpu_sweep.sh", variant],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_gpu_sweep_trains_detached_and_a_later_call_collects_the_variant(tiny_training_data, tmp_path):
    data, backbone = tiny_training_data
    env = dict(os.environ)
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",  # python3: this interpreter
        "DATA": str(data),
        "START": f"--backbone {backbone}",
        "SWEEP": str(tmp_path / "sweep"),
        "OUT": str(tmp_path / "out"),
        "WHEELS": str(tmp_path / "no-wheels"),  # the device machine's wheels are not this interpreter's
        "COMMON": "--device cpu --epochs 1 --max-steps 2 --queries-per-step 2 --group-size 3 --max-length 64",
    }
    assert _sweep("x:--seed 1", env | {"WAIT": "soon"}).returncode == 2  # refused before anything runs
    first = _sweep("x:--seed 1", env | {"WAIT": "0"})
    assert first.returncode == 0, first.stderr
    assert "still training: run the same command again" in first.stdout
    second = _sweep("x:--seed 1", env | {"WAIT": "300"})
    assert second.returncode == 0, second.stderr
    assert json.loads((tmp_path / "out" / "sweep.json").read_text())["chosen"] == "x"
    assert list((tmp_path / "out").glob("model.tar.part-*"))
    # the second call waited for the variant the first one started instead of starting it again
    assert (tmp_path / "sweep" / "x.log").read_text().count("config:") == 1
    # a soup of the variant and another model (here a copy of the variant's own)
    extra = tmp_path / "extra"
    shutil.copytree(tmp_path / "sweep" / "x" / "model", extra)
    soup = _sweep("x:--seed 1", env | {"WAIT": "300", "SOUP": "1", "SOUP_WITH": str(extra)})
    assert soup.returncode == 0, soup.stderr
    chosen = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert chosen["chosen"] == "soup"
    assert str(extra) in chosen["summary"]["soup"]["ingredient_dl21_ndcg@10"]
    other = _sweep("x:--seed 2", env | {"WAIT": "0"})  # the same name with other arguments: refused
    assert other.returncode == 2 and "other arguments" in other.stderr
    foreground = _sweep("x:--seed 2", env)  # without WAIT the detached run's status files are not read
    assert foreground.returncode == 0, foreground.stderr
