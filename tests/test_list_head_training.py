"""The list head's losses and its training script (CPU, tiny model, toy data)."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_training_smoke import PASSAGES, _load_script, tiny_training_data  # noqa: F401  (fixture)

from ragprune.pipeline import RerankPruner
from ragprune.training.losses import RankWeightedRankNetLoss, TopWeightedListMLELoss


def test_ranknet_weights_each_pair_by_its_teacher_ranks():
    scores, teacher = torch.tensor([[0.5, 2.0, -1.0]]), torch.tensor([[3.0, 2.0, 1.0]])
    pairs = [(1, 2, 0, 1), (1, 3, 0, 2), (2, 3, 1, 2)]  # (rank a, rank b, index a, index b)
    expected = sum(math.log1p(math.exp(scores[0, b] - scores[0, a])) / (i + j) for i, j, a, b in pairs)
    expected /= sum(1 / (i + j) for i, j, _, _ in pairs)
    assert RankWeightedRankNetLoss()(scores, teacher).item() == pytest.approx(expected, rel=1e-5)


def test_listmle_is_the_weighted_plackett_luce_likelihood_of_the_teacher_order():
    scores, teacher = torch.tensor([[0.5, 2.0, -1.0]]), torch.tensor([[1.0, 3.0, 2.0]])
    ordered = [2.0, -1.0, 0.5]  # student scores in the teacher's order
    weights = [1 + 1 / math.log2(r + 1) for r in (1, 2, 3)]
    terms = [ordered[r] - math.log(sum(math.exp(x) for x in ordered[r:])) for r in range(3)]
    expected = -sum(w * t for w, t in zip(weights, terms)) / sum(weights)
    assert TopWeightedListMLELoss()(scores, teacher).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss", [RankWeightedRankNetLoss(), TopWeightedListMLELoss()])
def test_list_losses_ignore_order_and_padding_and_prefer_the_teacher_order(loss):
    torch.manual_seed(0)
    teacher = torch.randn(1, 6)
    agreeing, random_scores = teacher * 3, torch.randn(1, 6)
    assert loss(agreeing, teacher) < loss(random_scores, teacher) < loss(-agreeing, teacher)
    for permutation in itertools.islice(itertools.permutations(range(6)), 0, 720, 97):
        index = torch.tensor(permutation)
        assert loss(random_scores[:, index], teacher[:, index]).item() == pytest.approx(
            loss(random_scores, teacher).item(), rel=1e-5
        )
    padded = torch.cat([random_scores, torch.tensor([[9.0]])], 1)
    padded_teacher = torch.cat([teacher, torch.tensor([[99.0]])], 1)
    mask = torch.tensor([[True] * 6 + [False]])
    assert loss(padded, padded_teacher, mask).item() == pytest.approx(
        loss(random_scores, teacher).item(), rel=1e-5
    )


def test_student_weight_mixes_the_models_own_order_into_the_target():
    from ragprune.models.heads.listwise import ListwiseHead
    from ragprune.training.list_head import CandidateList, ListHeadConfig, list_head_loss
    from ragprune.training.losses import ListwiseDistillationLoss

    torch.manual_seed(0)
    head = ListwiseHead(16, width=8)
    logits = torch.randn(7)
    view = CandidateList(
        "q", torch.randn(7, 16), logits, torch.zeros(7), torch.zeros(7, dtype=torch.bool), np.arange(7), 7
    )
    criteria = {"kl": ListwiseDistillationLoss(1.0, 0.3), "ranknet": RankWeightedRankNetLoss()}
    criteria["listmle"] = TopWeightedListMLELoss()
    mixed = list_head_loss(head, view, ListHeadConfig(student_weight=1.0), criteria)
    as_teacher = list_head_loss(head, replace(view, teacher=logits), ListHeadConfig(), criteria)
    torch.testing.assert_close(mixed, as_teacher)  # a flat teacher leaves the model's own order
    assert not torch.isclose(mixed, list_head_loss(head, view, ListHeadConfig(), criteria))


def test_train_list_head_saves_a_model_whose_list_modes_rerank_and_ignore_input_order(
    tiny_training_data,  # noqa: F811
    tiny_model_dir,
    tmp_path,
):
    data, _ = tiny_training_data
    summary = _load_script("train_list_head").main(
        [
            "--model",
            str(tiny_model_dir),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--epochs",
            "2",
            "--queries-per-step",
            "2",
            "--window",
            "3",
            "--width",
            "8",
        ]
    )
    assert summary["training_lists"] == 4 and summary["validation_lists"] == 1
    assert [r["epoch"] for r in summary["history"]] == [0, 1, 2]
    first = summary["history"][0]  # before training, every mode is the pointwise order
    assert first["dl21_ndcg@10_full"] == first["dl21_ndcg@10_listwise"] == first["dl21_ndcg@10_pointwise"]
    pruner = RerankPruner.load(tmp_path / "out" / "model", device="cpu")
    assert pruner.model.config.heads["listwise"].options["width"] == 8
    assert pruner.model.config.provenance.history[-1]["list_head"]["best"] == summary["best"]
    passages = list(PASSAGES.values())
    full = pruner.process("how long do fleas live", passages, mode="full", reorder=False)
    assert not torch.isclose(pruner.model.heads["listwise"].gate, torch.zeros(())).item()
    scores = np.array([p.scores["listwise"] for p in full])
    shuffled = [4, 2, 0, 3, 1]
    again = pruner.process(
        "how long do fleas live", [passages[i] for i in shuffled], mode="full", reorder=False
    )
    assert np.allclose([p.scores["listwise"] for p in again], scores[shuffled], atol=1e-5)
    # a model that already has a list head (e.g. the shipped one, retrained) gets it replaced
    again_summary = _load_script("train_list_head").main(
        ["--model", str(tmp_path / "out" / "model"), "--data", str(data), "--out", str(tmp_path / "again")]
        + ["--device", "cpu", "--epochs", "1", "--queries-per-step", "2", "--window", "3", "--width", "4"]
    )
    replaced = RerankPruner.load(tmp_path / "again" / "model", device="cpu").model
    assert set(replaced.config.heads) == {"rank", "token", "listwise"}
    assert replaced.config.heads["listwise"].options["width"] == 4
    assert again_summary["training_lists"] == 4


def test_joint_list_loss_trains_the_vectors_and_ignores_the_order_of_candidates():
    from ragprune.models.heads import ListwiseHead
    from ragprune.training.list_head import joint_list_loss
    from ragprune.training.losses import ListwiseDistillationLoss

    torch.manual_seed(0)
    head = ListwiseHead(8, width=8, dropout=0.0).eval()
    with torch.no_grad():
        head.gate.fill_(1.0)  # a trained head (0, its start, returns the rank logits unchanged)
    vectors = torch.randn(2, 5, 8, requires_grad=True)
    logits = torch.randn(2, 5, requires_grad=True)
    teacher, gold = torch.randn(2, 5), torch.zeros(2, 5, dtype=torch.bool)
    gold[0, 1] = True
    criterion = ListwiseDistillationLoss(1.0, 0.3)
    loss = joint_list_loss(head, vectors, logits, teacher, gold, criterion)
    loss.backward()
    assert vectors.grad is not None and float(vectors.grad.abs().sum()) > 0
    assert logits.grad is None  # the rank logits enter detached: the rank head keeps its own loss
    order = torch.tensor([3, 0, 4, 1, 2])
    shuffled = joint_list_loss(
        head, vectors[:, order], logits[:, order], teacher[:, order], gold[:, order], criterion
    )
    assert torch.allclose(loss, shuffled, atol=1e-6)
    assert not torch.allclose(loss, joint_list_loss(head, vectors, logits, -teacher, gold, criterion))


def test_the_list_term_reaches_the_encoder(tiny_training_data):  # noqa: F811 (fixture)
    from ragprune.models import RerankPruneConfig, RerankPruneModel, load_tokenizer
    from ragprune.models.config import HeadSpec
    from ragprune.training.list_head import ListHeadConfig, joint_list_loss
    from ragprune.training.losses import ListwiseDistillationLoss

    _, backbone = tiny_training_data
    torch.manual_seed(0)
    model = RerankPruneModel.from_backbone(backbone, RerankPruneConfig(max_length=64))
    model = model.with_head("listwise", HeadSpec("listwise", ListHeadConfig().head_options()))
    tokenizer = load_tokenizer(backbone)
    texts = list(PASSAGES.values())[:3]
    batch = tokenizer(["fleas"] * 3 + ["paris"] * 3, texts + texts, return_tensors="pt", padding=True)
    criterion = ListwiseDistillationLoss(1.0, 0.0)
    teacher, gold = torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.bool)
    grads = {}
    for gate in (0.0, 1.0):
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.heads["listwise"].gate.fill_(gate)
        out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        vectors = out["hidden"][:, 0].view(2, 3, -1)  # the step's [Q, G, H] layout, query-major
        joint_list_loss(
            model.heads["listwise"], vectors, out["rank"].view(2, 3), teacher, gold, criterion
        ).backward()
        weight = model.encoder.encoder.layer[0].attention.self.query.weight
        grads[gate] = 0.0 if weight.grad is None else float(weight.grad.abs().sum())
    assert grads[0.0] == 0.0 < grads[1.0]  # a closed gate passes nothing back: train.py starts it open
    assert model.heads["rank"].out.weight.grad is None  # the rank logits enter detached
