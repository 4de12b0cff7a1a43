"""The losses of ragprune's training: listwise distillation (rank head) and sentence contrast (token head)."""

from __future__ import annotations

import math

import pytest
import torch

from ragprune.training.losses import (
    IGNORE,
    ListwiseDistillationLoss,
    SentenceContrastLoss,
    sentence_probabilities,
)


def _kl(target: list[float], student_logits: list[float]) -> float:
    """KL(target || softmax(student_logits)) by hand."""
    norm = math.log(sum(math.exp(s) for s in student_logits))
    return sum(q * (math.log(q) - (s - norm)) for q, s in zip(target, student_logits) if q > 0)


def _softmax(values: list[float]) -> list[float]:
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def test_listwise_distillation_is_the_kl_to_the_tempered_teacher():
    student, teacher = [1.0, 0.0, -1.0], [2.0, 1.0, 0.0]
    loss = ListwiseDistillationLoss(temperature=2.0, gold_mix=0.0)
    value = loss(torch.tensor([student]), torch.tensor([teacher]))
    expected = _kl(_softmax([t / 2.0 for t in teacher]), student)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    assert expected > 0.01  # a value that can fail


def test_listwise_temperature_changes_the_loss():
    """The ``--tau`` bug: the temperature must reach the target."""
    scores, teacher = torch.tensor([[0.5, 0.0, -0.5, 1.0]]), torch.tensor([[1.5, 0.2, -1.0, 0.4]])
    values = [
        ListwiseDistillationLoss(temperature=t, gold_mix=0.0)(scores, teacher).item()
        for t in (0.25, 1.0, 4.0)
    ]
    assert len({round(v, 6) for v in values}) == 3
    sharp = ListwiseDistillationLoss(temperature=0.25).target(teacher)
    flat = ListwiseDistillationLoss(temperature=4.0).target(teacher)
    assert sharp.max() > flat.max() and sharp.min() < flat.min()


def test_listwise_loss_is_zero_when_the_student_matches_the_target():
    teacher = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    loss = ListwiseDistillationLoss(temperature=0.5, gold_mix=0.0)
    assert loss(teacher / 0.5, teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(teacher / 0.5 + 7.0, teacher).item() == pytest.approx(0.0, abs=1e-6)  # shift-invariant


def test_listwise_gold_mix_moves_target_mass_to_gold_rows_only():
    teacher = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    gold = torch.tensor([[False, True, False], [False, False, False]])
    loss = ListwiseDistillationLoss(temperature=1.0, gold_mix=0.3)
    target = loss.target(teacher, gold)
    plain = torch.softmax(teacher, dim=-1)
    torch.testing.assert_close(target[0], 0.7 * plain[0] + 0.3 * torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(target[1], plain[1])  # no gold: the teacher alone
    torch.testing.assert_close(target.sum(-1), torch.ones(2))
    scores = torch.tensor([[0.3, -0.2, 0.1], [0.0, 0.5, -0.5]])
    expected = (_kl(target[0].tolist(), scores[0].tolist()) + _kl(target[1].tolist(), scores[1].tolist())) / 2
    assert loss(scores, teacher, gold).item() == pytest.approx(expected, rel=1e-5)  # batchmean


def test_listwise_loss_rejects_bad_parameters_and_shapes():
    with pytest.raises(ValueError, match="temperature"):
        ListwiseDistillationLoss(temperature=0.0)
    with pytest.raises(ValueError, match="gold_mix"):
        ListwiseDistillationLoss(gold_mix=1.5)
    with pytest.raises(ValueError, match="queries, candidates"):
        ListwiseDistillationLoss()(torch.zeros(2, 3), torch.zeros(3, 2))
    assert ListwiseDistillationLoss(temperature=0.5).config() == {"temperature": 0.5, "gold_mix": 0.3}


def test_listwise_gradient_raises_the_teachers_favourite():
    scores = torch.zeros(1, 3, requires_grad=True)
    ListwiseDistillationLoss(gold_mix=0.0)(scores, torch.tensor([[0.0, 3.0, 0.0]])).backward()
    assert scores.grad[0, 1] < 0 < scores.grad[0, 0]  # descent raises candidate 1


def test_sentence_probabilities_average_token_probabilities_per_sentence():
    logits = torch.tensor([[0.0, math.log(3.0), 0.0, 5.0, -1.0]])  # sigmoid: .5, .75, .5, ...
    sentence_ids = torch.tensor([[-1, 0, 0, -1, 1]])
    probs, counts = sentence_probabilities(logits, sentence_ids, 3)
    assert counts.tolist() == [[2.0, 1.0, 0.0]]
    assert probs[0, 0].item() == pytest.approx((0.75 + 0.5) / 2)
    assert probs[0, 1].item() == pytest.approx(1 / (1 + math.e))
    assert probs[0, 2].item() == 0.0


def _one_token_per_sentence(logits: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor([logits]), torch.arange(len(logits)).unsqueeze(0)


def test_balanced_cross_entropy_gives_each_class_half_of_a_passage():
    logits, ids = _one_token_per_sentence([0.0, 0.0, 0.0, 0.0])  # p = .5 everywhere
    labels = torch.tensor([[1, 0, 0, 0]])
    loss = SentenceContrastLoss(pair_weight=0.0)(logits, ids, labels, torch.ones(1))
    assert loss.item() == pytest.approx(math.log(2))
    # a confident answer sentence and uncertain others: only the negatives' half is left
    logits, ids = _one_token_per_sentence([20.0, 0.0, 0.0, 0.0])
    loss = SentenceContrastLoss(pair_weight=0.0)(logits, ids, labels, torch.ones(1))
    assert loss.item() == pytest.approx(0.5 * math.log(2), abs=1e-4)


def test_pair_term_punishes_a_head_that_scores_a_passage_flat():
    labels = torch.tensor([[0, 1, 0]])
    weight = torch.ones(1)
    criterion = SentenceContrastLoss(pair_weight=1.0, margin=2.0)
    flat = criterion(*_one_token_per_sentence([3.0, 3.0, 3.0]), labels, weight)
    apart = criterion(*_one_token_per_sentence([-3.0, 3.0, -3.0]), labels, weight)
    only_bce = SentenceContrastLoss(pair_weight=0.0)
    pair_flat = flat - only_bce(*_one_token_per_sentence([3.0, 3.0, 3.0]), labels, weight)
    assert pair_flat.item() == pytest.approx(math.log1p(math.exp(2.0)), rel=1e-4)
    assert apart.item() < flat.item()


def test_ignored_sentences_and_zero_weight_passages_do_not_count():
    logits, ids = _one_token_per_sentence([5.0, -5.0])
    criterion = SentenceContrastLoss()
    base = criterion(logits, ids, torch.tensor([[1, 0]]), torch.ones(1))
    stacked = criterion(
        torch.cat([logits, torch.tensor([[-9.0, 9.0]])]),
        torch.cat([ids, ids]),
        torch.tensor([[1, 0], [1, 0]]),
        torch.tensor([1.0, 0.0]),
    )
    assert stacked.item() == pytest.approx(base.item(), rel=1e-5)
    nothing = criterion(logits, ids, torch.full((1, 2), IGNORE), torch.ones(1))
    assert nothing.item() == 0.0


def test_loss_has_gradients_only_where_labels_are():
    logits = torch.zeros(1, 4, requires_grad=True)
    ids = torch.tensor([[-1, 0, 1, 2]])
    SentenceContrastLoss()(logits, ids, torch.tensor([[1, 0, IGNORE]]), torch.ones(1)).backward()
    grad = logits.grad[0]
    assert grad[0] == 0 and grad[3] == 0
    assert grad[1] < 0 < grad[2]  # raise the gold sentence, lower the other
