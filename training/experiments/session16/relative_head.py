"""Issue 10 probe (CPU): can a sentence score that also sees the passage's best sentence align the sources?

Session 14's probe (``session14/head_refit.py``) found that no token head on the shipped encoder's
features meets the held-out WikiQA, SciFact and HotpotQA gates at one threshold: the sources' sentence
probabilities are not aligned. This probe keeps the shipped encoder *and* token head and adds a
three-parameter sentence-level layer on top, fitted on training rows only:

    logit p'_i = a * z_i + c * (z_i - max_j z_j) + b,    z_i = logit of the shipped sentence probability

``max_j`` runs over the sentences of the same passage window. ``c`` lets a sentence's score fall when
another sentence of its passage is much stronger (SciFact abstracts: every sentence on topic, one or two
answer it), and leaves the best sentence of each passage at ``a * z + b``, so a non-relevant passage's
scores do not rise. No position feature is used. The variant ``lse`` uses ``z_i - logsumexp_j z_j``.

Features are session 14's cache of shipped hidden states (``--cache``; built by head_refit.py). No
evaluation set (DL19/DL20/BEIR, the pruning dev files) is read.

Usage: python training/experiments/session16/relative_head.py [--cache /tmp/head_refit_features.pt]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "session14"))
from head_refit import curves, feasible, flatten, gold_mask, row_weights, sentence_probs  # noqa: E402

from ragprune.models.encoder import RerankPruneModel  # noqa: E402
from ragprune.training.labels import IGNORE  # noqa: E402


def sentence_logits(rows, w, b):
    """The head's sentence logits over every sentence of every row, computed once per set of rows:
    ``(z, has, row_of, labels)`` (``has``: the sentence has tokens)."""
    h, sid, labels, row_of, n = flatten(rows)
    p, counts = sentence_probs(h, sid, n, w, b)
    return torch.logit(p.clamp(1e-6, 1 - 1e-6)), counts > 0, row_of, labels


def sentence_features(logits, kind):
    """Per sentence: the feature columns of ``kind`` (``z`` and ``z - max`` or ``z - logsumexp`` over the
    row's sentences that have tokens, and for ``+n`` a size term), ``valid``, ``row_of``, ``labels``."""
    z, has, row_of, labels = logits
    rel = torch.zeros(len(z))
    size = torch.zeros(len(z))
    for r in torch.unique(row_of):
        m = (row_of == r) & has
        if m.any():
            ref = z[m].max() if kind.startswith("max") else torch.logsumexp(z[m], 0)
            rel[m] = z[m] - ref
            size[m] = float(m.sum()) ** 0.5 - 2.0
    columns = [z, rel] + ([size] if kind.endswith("+n") else [])
    return torch.stack(columns, 1), (labels != IGNORE) & has, row_of, labels


def fit(x, valid, labels, weight, steps=500, lr=0.05):
    y = (labels == 1).float()
    params = torch.zeros(x.shape[1] + 1)
    params[0] = 1.0
    params.requires_grad_(True)  # weights of the columns of x, then the bias
    opt = torch.optim.Adam([params], lr=lr)
    m = valid & (weight > 0)
    for _ in range(steps):
        opt.zero_grad()
        logit = x @ params[:-1] + params[-1]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit[m], y[m], weight=weight[m])
        loss = loss * m.sum() / weight[m].sum()
        loss.backward()
        opt.step()
    return params.detach()


def calibrate(x, params, valid, labels, rows, row_of):
    """Platt scaling of the new logit on the training rows' gold passages, unweighted (as the pipeline's
    sentence calibration: probabilities mean the share of such sentences that are gold)."""
    logit = x @ params[:-1] + params[-1]
    m = gold_mask(rows, valid, row_of)
    y = (labels == 1).float()
    ab = torch.tensor([1.0, 0.0], requires_grad=True)
    opt = torch.optim.LBFGS([ab], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(ab[0] * logit[m] + ab[1], y[m])
        loss.backward()
        return loss

    opt.step(closure)
    return ab.detach()


def pooled(rows, scored, t):
    """Gold recall / other dropped over every held-out gold passage at threshold ``t``."""
    p, valid, row_of, labels = scored
    m = gold_mask(rows, valid, row_of)
    y = labels[m] == 1
    return float((p[m][y] > t).float().mean()), float((p[m][~y] <= t).float().mean())


def show(title, rows, p, valid, row_of, labels):
    scored = (p, valid, row_of, labels)
    print(f"{title}:")
    for k, v in curves(rows, scored).items():
        print(f"  {k:10s} dropped at recall 0.90 {v['dropped_at_recall_0.90']:.3f}  auc {v['auc']:.3f}")
    table = feasible(rows, scored)
    good = [t for t, ok, _ in table if ok]
    print(f"  thresholds meeting the held-out gates: {good if good else 'none'}")
    for t, ok, row in table:
        if t in (0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.5) or ok:
            shares = ", ".join(f"{k} {r:.3f}/{d:.3f}" for k, (r, d) in row.items())
            print(f"    t={t:.2f} pooled %.3f/%.3f, {shares}" % pooled(rows, scored, t))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ragprune/models/default")
    parser.add_argument("--cache", default="/tmp/head_refit_features.pt")
    args = parser.parse_args()
    model = RerankPruneModel.from_pretrained(args.model).float().eval()
    w0, b0 = (t.detach().float().clone() for t in model.heads["token"].linear_map())
    train, held = torch.load(args.cache)
    train_logits, held_logits = sentence_logits(train, w0, b0), sentence_logits(held, w0, b0)
    hx, hvalid, hrow, hlabels = sentence_features(held_logits, "max")
    show("shipped head", held, torch.sigmoid(hx[:, 0]), hvalid, hrow, hlabels)
    for kind in ("max", "lse", "max+n", "lse+n"):
        for source_weight in ({}, {"scifact": 3.0}, None):
            x, valid, row_of, labels = sentence_features(train_logits, kind)
            if source_weight is None:  # unweighted maximum likelihood, as the sentence calibration
                weight = valid.float()
            else:
                weight = row_weights(train, labels, valid, row_of, source_weight)
            params = fit(x, valid, labels, weight)
            ab = calibrate(x, params, valid, labels, train, row_of)
            hx, hvalid, hrow, hlabels = sentence_features(held_logits, kind)
            p = torch.sigmoid(ab[0] * (hx @ params[:-1] + params[-1]) + ab[1])
            rounded = [round(v, 3) for v in params.tolist()]
            weighting = (
                "unweighted"
                if source_weight is None
                else f"balanced, source weights {source_weight or 'none'}"
            )
            name = f"{kind}, {weighting}: weights, bias {rounded}, platt {ab.tolist()}"
            show(name, held, p, hvalid, hrow, hlabels)


if __name__ == "__main__":
    main()
