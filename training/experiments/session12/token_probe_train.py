"""Issue 10, training splits only: inside gold passages, does the shipped model's token head order gold
above non-gold sentences, and would a new linear head on the frozen states order them better?

For the SciFact-rationale, WikiQA and NQ training groups (``weight_pruning.calibration`` sources, the gold
passage and one negative each), the frozen model's last hidden states are mean-pooled per sentence. Per
passage with both classes: the share of (gold, non-gold) sentence pairs in the right order (pairwise AUC),
for the head's sentence score (mean token keep-probability) and for a class-balanced logistic-regression
probe fitted on 80% of the passages (per source, and pooled over the three), read on the other 20%.
These passages were trained on: this checks fit and headroom, not generalisation. Output:
token_probe_train.txt.

RAGPRUNE_DATA=../shared/data python training/experiments/session12/token_probe_train.py
"""

import random

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from ragprune.models.registry import load_model
from ragprune.weight_pruning.calibration import load_source
from ragprune.weight_pruning.loss import group_batches, model_inputs

model, tokenizer = load_model(None)
model.eval()


def gold_passages(source: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(sentence states [S, H], head scores [S], labels [S]) of each gold passage with both classes."""
    groups = load_source(source, 2, 0)
    found = []
    for batch in group_batches(groups, tokenizer, model.config.max_length, groups_per_batch=16):
        with torch.no_grad():
            output = model(**model_inputs(batch, "cpu"))
        hidden, logits = output["hidden"].float(), output["token"].float()
        for row, labels in enumerate(batch["sentence_labels"]):
            states, scores, ys = [], [], []
            for sentence, label in enumerate(labels.tolist()):
                tokens = batch["sentence_ids"][row] == sentence
                if label < 0 or not tokens.any():
                    continue
                states.append(hidden[row, tokens].mean(0).numpy())
                scores.append(float(torch.sigmoid(logits[row, tokens]).mean()))
                ys.append(label)
            if 0 in ys and 1 in ys:
                found.append((np.array(states), np.array(scores), np.array(ys)))
    return found


def pair_auc(passages, score) -> float:
    """Mean over passages of the share of (gold, non-gold) pairs with the gold sentence scored higher."""
    shares = []
    for states, scores, ys in passages:
        values = score(states, scores)
        gold, other = values[ys == 1], values[ys == 0]
        shares.append((gold[:, None] > other).mean() + 0.5 * (gold[:, None] == other).mean())
    return float(np.mean(shares))


def probe(passages) -> LogisticRegression:
    states = np.concatenate([s for s, _, _ in passages])
    labels = np.concatenate([y for _, _, y in passages])
    return LogisticRegression(class_weight="balanced", max_iter=2000).fit(states, labels)


def head(states, scores):
    return scores


rng = random.Random(0)
splits = {}
for source in ("scifact-train", "wikiqa-train", "nq-train"):
    passages = gold_passages(source)
    rng.shuffle(passages)
    cut = int(0.8 * len(passages))
    splits[source] = (passages[:cut], passages[cut:])
    print(
        f"{source}: {len(passages)} gold passages with both classes; "
        f"head AUC on all {pair_auc(passages, head):.3f}"
    )
pooled = probe([p for fit, _ in splits.values() for p in fit])
for source, (fit, held_out) in splits.items():
    own = probe(fit)
    print(
        f"{source}, held-out 20%: head {pair_auc(held_out, head):.3f}, "
        f"probe on its own source {pair_auc(held_out, lambda s, _, m=own: m.decision_function(s)):.3f}, "
        f"probe on all three {pair_auc(held_out, lambda s, _: pooled.decision_function(s)):.3f}"
    )
