"""Calibration fitted after training: Platt scaling of the rank logit, sentence calibration and its fold."""

from __future__ import annotations

import pytest
import torch

from ragprune.training.calibration import fit_platt, fit_sentence_calibration, fold_calibration
from ragprune.training.thresholds import heldout_pruning


def _logistic_sample(n: int, scale: float, bias: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=generator) * 2
    y = (torch.rand(n, generator=generator) < torch.sigmoid(scale * x + bias)).long()
    return x, y


def test_platt_recovers_the_generating_logistic():
    x, y = _logistic_sample(20000, scale=1.5, bias=-0.7)
    pairs = [(float(v), 2 * int(r)) for v, r in zip(x, y)]  # relevant = grade 2
    scale, bias = fit_platt(pairs)
    assert scale == pytest.approx(1.5, abs=0.1) and bias == pytest.approx(-0.7, abs=0.1)
    # grade 1 is not relevant at the default cut, so these pairs hold no positive at all
    no_positive = fit_platt([(v, min(g, 1)) for v, g in pairs])
    assert no_positive[1] < bias - 1.0
    with pytest.raises(ValueError, match="at least one"):
        fit_platt([])


def _one_token_sentences(x: torch.Tensor, y: torch.Tensor, per_row: int = 10):
    rows = len(x) // per_row
    logits = x[: rows * per_row].view(rows, per_row)
    sentence_ids = torch.arange(per_row).repeat(rows, 1)
    labels = y[: rows * per_row].view(rows, per_row)
    return [(logits, sentence_ids, labels)]


def test_sentence_calibration_recovers_the_affine_map_and_bounds_the_scale():
    x, y = _logistic_sample(20000, scale=2.0, bias=-0.5, seed=1)
    scale, bias = fit_sentence_calibration(_one_token_sentences(x, y))
    assert scale == pytest.approx(2.0, abs=0.15) and bias == pytest.approx(-0.5, abs=0.1)
    separable = _one_token_sentences(x, (x > 0).long())
    scale, _ = fit_sentence_calibration(separable)
    assert scale == pytest.approx(torch.exp(torch.tensor(2.0)).item(), rel=1e-4)  # clamped, not infinite
    with pytest.raises(ValueError):
        fit_sentence_calibration([])


def test_fold_calibration_makes_the_token_head_output_the_affine_map(pruner):
    model = pruner.model
    original = {k: v.clone() for k, v in model.head("token").state_dict().items()}
    ids = torch.tensor([[101, 2129, 2146, 102, 5, 6, 7, 102]])
    mask, types = torch.ones_like(ids), torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]])
    try:
        with torch.no_grad():
            before = model(ids, mask, types)["token"].float()
            fold_calibration(model, 1.7, -0.4)
            after = model(ids, mask, types)["token"].float()
        torch.testing.assert_close(after, 1.7 * before - 0.4, rtol=1e-3, atol=1e-3)
    finally:
        model.head("token").load_state_dict(original)


def test_heldout_pruning_counts_gold_recall_and_other_sentences_dropped():
    logits = torch.tensor([[4.0, -4.0, 4.0, -4.0], [-4.0, -4.0, 0.0, 0.0]])
    sentence_ids = torch.tensor([[0, 1, 2, 3], [0, 1, -1, -1]])
    labels = torch.tensor([[1, 1, 0, 0], [1, -100, -100, -100]])
    result = heldout_pruning([(logits, sentence_ids, labels)], ["first"], threshold=0.5)
    assert result["gold_recall"] == pytest.approx(1 / 3)  # gold kept: row 0 sentence 0 only
    assert result["other_dropped"] == pytest.approx(1 / 2)
    assert result["gold_recall_by_position"] == {"first": 0.5, "whole": 0.0}
    assert result["by_source"] == {}  # no sources given
    by_source = heldout_pruning([(logits, sentence_ids, labels)], ["first"], 0.5, ["spliced", "scifact"])
    assert by_source["by_source"] == {
        "spliced": {"gold_recall": 0.5, "other_dropped": 0.5, "gold": 2, "other": 2},
        "scifact": {"gold_recall": 0.0, "other_dropped": None, "gold": 1, "other": 0},
    }
    with pytest.raises(ValueError, match="3 sources for 2 held-out rows"):
        heldout_pruning([(logits, sentence_ids, labels)], [], 0.5, ["nq", "nq", "wikiqa"])
