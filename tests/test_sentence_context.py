"""The sentence-context layer: its map, its fit on held-out outputs, its config record, the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ragprune.models import RerankPruneConfig
from ragprune.models.sentence_context import SentenceContext
from ragprune.training.calibration import fit_sentence_context
from ragprune.training.thresholds import heldout_pruning

CONTEXT = SentenceContext(weight=1.2, relative_weight=0.5, bias=0.3)


def test_the_best_sentence_of_each_passage_keeps_the_absolute_map_and_the_others_fall():
    p = torch.tensor([0.9, 0.5, 0.1, 0.2, 0.05, 0.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    out = CONTEXT.apply(p, groups, 2)
    z = torch.logit(p[:5])
    absolute = torch.sigmoid(CONTEXT.weight * z + CONTEXT.bias)
    # each passage's best sentence (0 and 3) is read on its own; the others fall below the absolute map
    assert out[0] == pytest.approx(float(absolute[0]), abs=1e-6)
    assert out[3] == pytest.approx(float(absolute[3]), abs=1e-6)
    assert (out[[1, 2, 4]] < absolute[[1, 2, 4]]).all()
    # a sentence without tokens stays 0; a passage's order of sentences is unchanged
    assert out[5] == 0
    assert out[0] > out[1] > out[2] and out[3] > out[4]
    # each passage on its own: passage 1 alone gives the same scores
    alone = CONTEXT.apply(p[3:], torch.zeros(3, dtype=torch.long), 1)
    assert torch.allclose(alone, out[3:])
    # the [B, S] layout (one passage a row) agrees with the flat one
    rows = CONTEXT.apply_rows(p.view(2, 3), p.view(2, 3) > 0)
    assert torch.allclose(rows.reshape(-1), out)


def test_a_map_that_would_reorder_a_passage_is_refused():
    with pytest.raises(ValueError, match="must be > 0"):
        SentenceContext(weight=0.2, relative_weight=-0.5, bias=0.0)


def test_the_config_records_the_layer_and_refuses_it_with_votes():
    config = RerankPruneConfig(sentence_context=CONTEXT)
    again = RerankPruneConfig.from_dict(config.to_dict())
    assert again.sentence_context == CONTEXT
    assert RerankPruneConfig.from_dict(RerankPruneConfig().to_dict()).sentence_context is None
    with pytest.raises(ValueError, match="sentence_reduce 'mean' or 'max'"):
        RerankPruneConfig(sentence_context=CONTEXT, sentence_reduce="vote")


def _rows(passages: list[tuple[float, list[float], list[int]]], seed: int = 0):
    """One token per sentence: per passage an offset (its topic level, shared by its sentences) plus
    each sentence's own logit; labels as given."""
    width = max(len(logits) for _, logits, _ in passages)
    logits = torch.full((len(passages), width), -30.0)
    sentence_ids = torch.full((len(passages), width), -1)
    labels = torch.full((len(passages), width), -100)
    for r, (offset, own, gold) in enumerate(passages):
        n = len(own)
        logits[r, :n] = offset + torch.tensor(own)
        sentence_ids[r, :n] = torch.arange(n)
        labels[r, :n] = torch.tensor(gold)
    return [(logits, sentence_ids, labels)]


def _two_kinds_of_passage(count: int, seed: int):
    """Half the passages "on topic" (every sentence high, gold a margin above the rest, as SciFact's
    abstracts), half "mixed" (gold high, the rest low, as WikiQA's): a gold sentence is the one that
    stands out in its passage, whatever the passage's level."""
    generator = torch.Generator().manual_seed(seed)
    passages = []
    for i in range(count):
        n = 8
        own = (torch.randn(n, generator=generator) * 0.5).tolist()
        gold = [0] * n
        g = int(torch.randint(n, (1,), generator=generator))
        gold[g] = 1
        own[g] += 2.5
        passages.append((2.0 if i % 2 else -2.0, own, gold))
    return passages


def test_the_fit_learns_the_relative_term_and_its_probabilities_are_calibrated():
    batches = _rows(_two_kinds_of_passage(400, seed=1))
    context = fit_sentence_context(batches, batches)
    assert context.relative_weight > 0.5  # the gold sentence is the one above its passage's others
    logits, sentence_ids, labels = batches[0]
    present = labels != -100
    p = context.apply_rows(torch.sigmoid(logits), present)[present]
    y = (labels[present] == 1).double()
    # Platt's step has an intercept: at its optimum the mean probability equals the share of gold
    assert float(p.double().mean()) == pytest.approx(float(y.mean()), abs=2e-3)
    # held out: at the threshold where recall is 0.9, the layer drops more of the other sentences
    held = _rows(_two_kinds_of_passage(400, seed=2))
    plain = [heldout_pruning(held, [], t) for t in torch.linspace(0.01, 0.99, 99).tolist()]
    layered = [heldout_pruning(held, [], t, context=context) for t in torch.linspace(0.01, 0.99, 99).tolist()]

    def dropped_at_recall(results):
        return max(r["other_dropped"] for r in results if r["gold_recall"] >= 0.9)

    assert dropped_at_recall(layered) > dropped_at_recall(plain) + 0.1
    # passages that do not answer: without them every passage seems to hold a gold sentence and the fit
    # lifts each passage's best one; with them, an irrelevant passage's best sentence stays low
    generator = torch.Generator().manual_seed(3)
    irrelevant = [(-4.0, (torch.randn(8, generator=generator) * 0.5).tolist(), [0] * 8) for _ in range(400)]
    with_irrelevant = [
        (torch.cat([a, b]), torch.cat([c, d]), torch.cat([e, f]))
        for (a, c, e), (b, d, f) in zip(batches, _rows(irrelevant))
    ]
    seen = fit_sentence_context(with_irrelevant, batches)
    probe = torch.sigmoid(torch.tensor([[-4.0, -5.0, -6.0]]))
    lifted = context.apply_rows(probe, probe > 0)[0, 0]
    assert lifted > 0.5 and seen.apply_rows(probe, probe > 0)[0, 0] < 0.05
    with pytest.raises(ValueError, match="labels and tokens in both sets"):
        fit_sentence_context(batches, [(logits, sentence_ids, torch.full_like(labels, -100))])


def test_the_pipeline_reads_sentences_through_the_layer(tiny_model_dir: Path, tmp_path: Path):
    from ragprune.models import RerankPruneModel, load_tokenizer
    from ragprune.pipeline import RerankPruner

    model = RerankPruneModel.from_pretrained(tiny_model_dir)
    model.config.sentence_context = CONTEXT
    folder = tmp_path / "with_context"
    model.save_pretrained(folder, load_tokenizer(tiny_model_dir))
    query = "how long do fleas live?"
    passages = [
        "Fleas live up to a year. The Eiffel Tower is in Paris. Cats sleep a lot.",
        "Paris is in France. Fleas bite.",
    ]
    with (
        RerankPruner.load(tiny_model_dir, device="cpu") as plain,
        RerankPruner.load(folder, device="cpu") as ctx,
    ):
        before = plain.process(query, passages, threshold=0.0, reorder=False)
        after = ctx.process(query, passages, threshold=0.5, reorder=False)
    for b, a in zip(before, after):
        raw = torch.tensor([s.score for s in b.sentences])
        expected = CONTEXT.apply(raw, torch.zeros(len(raw), dtype=torch.long), 1)
        got = torch.tensor([s.score for s in a.sentences])
        assert torch.allclose(got, expected, atol=1e-5)
        assert [s.kept for s in a.sentences] == [float(s) > 0.5 for s in expected]
