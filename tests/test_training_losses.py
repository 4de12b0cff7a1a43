"""The sentence-level token loss and the calibration fold of ragprune's training."""

from __future__ import annotations

import math

import pytest
import torch

from ragprune.training.losses import IGNORE, SentenceContrastLoss, sentence_probabilities


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
