"""Issue 10 probe (CPU): is the token head's direction, or the encoder's features, what holds SciFact back?

The shipped encoder is frozen; its last hidden states are read once for gold-labelled training passages
(training groups of the session-13 data build, with their labels and token-loss weights) and for the
held-out training questions (``valid_pruning``: never trained on). A new linear token head
(``logit = h @ w + b``, the shape the pipeline and its kernel read) is then fitted on the training rows
with the sentence probability the pipeline thresholds (mean token keep-probability of the sentence) and
a per-passage class-balanced BCE, under several source weightings. Each head is compared with the
shipped one on the held-out rows per source, threshold-free: gold-sentence recall against the share
of other sentences dropped inside gold passages, read at recall 0.90, and within-passage AUC.

No evaluation set (DL19/DL20/BEIR, the pruning dev files) is read.

Usage: python training/experiments/session14/head_refit.py --data .cache/s13/train [--model ...]
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ragprune.models.encoder import RerankPruneModel, load_tokenizer
from ragprune.pipeline.encoding import PairTemplate
from ragprune.training.batching import collate_examples
from ragprune.training.config import TrainConfig
from ragprune.training.data import Example, load_training_data
from ragprune.training.labels import IGNORE


def training_rows(data, rng: random.Random, negatives: int, msmarco: int, spliced: int):
    rows = []
    for group in data.train_groups:
        if group.source.startswith("msmarco") or group.source == "dl22":
            continue
        gold = [c for c in group.candidates if c.pid in group.gold]
        others = [c for c in group.candidates if c.pid not in group.gold and c.weight > 0]
        for c in gold + others[:negatives]:
            example = Example(group.query_ids, data.passage(c.pid), c.labels, c.weight)
            rows.append((example, group.source, c.pid in group.gold))
    ms = [g for g in data.train_groups if g.source.startswith("msmarco")]
    for group in rng.sample(ms, min(msmarco, len(ms))):
        c = group.candidates[0]  # the teacher's best (candidates are in teacher order)
        rows.append((Example(group.query_ids, data.passage(c.pid), c.labels, c.weight), "msmarco", False))
    for example in rng.sample(data.spliced, min(spliced, len(data.spliced))):
        rows.append((example, "spliced", True))
    return rows


def heldout_rows(data):
    """The held-out questions' gold passages (not the held-out spliced ones), with their source."""
    pairs = zip(data.heldout_examples(), data.heldout_sources())
    return [(example, source, True) for example, source in pairs if source != "spliced"]


@torch.no_grad()
def features(model, rows, template, max_length, pad_id, batch_size=64, all_tokens=False):
    """Per row: hidden states ``h`` [T, H] fp16 and sentence index ``sid`` [T] of its sentence tokens (with
    ``all_tokens``: of every token of the pair, ``sid`` -1 outside sentences), labels [S], weight, source,
    gold."""
    out = []
    for first in range(0, len(rows), batch_size):
        chunk = rows[first : first + batch_size]
        batch = collate_examples([r[0] for r in chunk], template, max_length, pad_id)
        hidden = model.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        lengths = batch["attention_mask"].sum(1)
        for i, (example, source, gold) in enumerate(chunk):
            in_pair = torch.arange(hidden.shape[1]) < lengths[i]
            keep = in_pair if all_tokens else batch["sentence_ids"][i] >= 0
            out.append(
                {
                    "h": hidden[i][keep].half(),
                    "sid": batch["sentence_ids"][i][keep],
                    "labels": torch.as_tensor(np.asarray(example.labels)),
                    "weight": float(example.weight),
                    "source": source,
                    "gold": gold,
                }
            )
        if first % (batch_size * 20) == 0:
            print(f"  encoded {first + len(chunk)}/{len(rows)}", flush=True)
    return out


def cached_features(cache, model, tokenizer, data_path, model_path, seed, build_rows, all_tokens=False):
    """``(training features, held-out features)`` from ``cache`` if it exists, else built and saved there:
    ``build_rows(data, rng)`` gives the ``(training rows, held-out rows)`` of the session-13 data build at
    ``data_path`` (loaded for ``model_path``'s tokenizer), encoded by :func:`features`."""
    if Path(cache).is_file():
        return torch.load(cache)
    config = TrainConfig(data=Path(data_path), init=Path(model_path), out=Path("/tmp/head_refit"))
    data = load_training_data(config, tokenizer)
    template = PairTemplate.from_tokenizer(tokenizer)
    pad_id = tokenizer.pad_token_id or 0
    train_r, held_r = build_rows(data, random.Random(seed))
    counts = Counter(source for _, source, _ in train_r)
    print("training rows by source:", dict(counts), "held-out rows:", len(held_r), flush=True)
    held = features(model, held_r, template, config.max_length, pad_id, all_tokens=all_tokens)
    train = features(model, train_r, template, config.max_length, pad_id, all_tokens=all_tokens)
    torch.save((train, held), cache)
    return train, held


def flatten(rows):
    """Concatenate rows into flat tensors with a global sentence index."""
    hs, sids, labels, row_of_sentence = [], [], [], []
    offset = 0
    for r, row in enumerate(rows):
        n = len(row["labels"])
        hs.append(row["h"])
        sids.append(row["sid"] + offset)
        labels.append(row["labels"])
        row_of_sentence.append(torch.full((n,), r))
        offset += n
    return torch.cat(hs).float(), torch.cat(sids), torch.cat(labels), torch.cat(row_of_sentence), offset


def sentence_probs(h, sid, n, w, b):
    p = torch.sigmoid(h @ w + b)
    sums = torch.zeros(n).index_add_(0, sid, p)
    counts = torch.zeros(n).index_add_(0, sid, torch.ones_like(p))
    return sums / counts.clamp(min=1), counts


def row_weights(rows, labels, valid, row_of, source_weight, balanced=True):
    """Per sentence: its row's weight (times ``source_weight`` of the row's source), spread over the
    row's ``valid`` sentences; ``balanced``: each present class carries half of it (as
    SentenceContrastLoss), else every sentence of the row alike (the probabilities learn each source's
    base rate)."""
    y = (labels == 1).float()
    weight = torch.zeros(len(labels))
    for r, row in enumerate(rows):
        mask = (row_of == r) & valid
        lab = y[mask]
        base = row["weight"] * source_weight.get(row["source"], 1.0)
        pos, neg = int(lab.sum()), int((1 - lab).sum())
        if balanced:
            wr = torch.where(
                lab > 0,
                base / (2 * max(pos, 1)) if neg else base / max(pos, 1),
                base / (2 * max(neg, 1)) if pos else base / max(neg, 1),
            )
        else:
            wr = torch.full_like(lab, base / max(pos + neg, 1))
        weight[mask] = wr
    return weight


def gold_mask(rows, valid, row_of):
    """The ``valid`` sentences of the rows that are gold passages."""
    gold_rows = torch.tensor([r for r, row in enumerate(rows) if row["gold"]])
    return valid & torch.isin(row_of, gold_rows)


def fit_head(rows, w0, b0, source_weight, steps=300, lr=0.01, l2=1e-4, balanced=True):
    h, sid, labels, row_of, n = flatten(rows)
    valid = labels != IGNORE
    y = (labels == 1).float()
    weight = row_weights(rows, labels, valid, row_of, source_weight, balanced)
    w = w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        p, counts = sentence_probs(h, sid, n, w, b)
        p = p.clamp(1e-6, 1 - 1e-6)
        m = valid & (counts > 0)
        bce = -(y * p.log() + (1 - y) * (1 - p).log())
        loss = (weight[m] * bce[m]).sum() / weight[m].sum() + l2 * (w - w0).pow(2).sum()
        loss.backward()
        opt.step()
    return w.detach(), b.detach()


def scores(rows, w, b):
    """Sentence probabilities of ``rows`` under the head ``(w, b)``, with what reads them: ``(p, valid,
    row_of, labels)`` over every sentence of every row."""
    h, sid, labels, row_of, n = flatten(rows)
    p, counts = sentence_probs(h, sid, n, w, b)
    return p, (labels != IGNORE) & (counts > 0), row_of, labels


def curves(rows, scored):
    """Per source and pooled ("all"), on gold passages: sentence counts, the largest share of other
    sentences dropped on a fine threshold grid while gold recall stays >= 0.90, and within-passage AUC."""
    p, valid, row_of, labels = scored
    report = {}
    grid = np.quantile(p[valid].numpy(), np.linspace(0, 1, 400))
    for source in sorted({row["source"] for row in rows}) + ["all"]:
        rs = [r for r, row in enumerate(rows) if row["gold"] and (source == "all" or row["source"] == source)]
        mask = valid & torch.isin(row_of, torch.tensor(rs))
        pp, yy = p[mask].numpy(), (labels[mask] == 1).numpy()
        if yy.sum() == 0 or (~yy).sum() == 0:
            continue
        recall = np.array([(pp[yy] > t).mean() for t in grid])
        dropped = np.array([(pp[~yy] <= t).mean() for t in grid])
        ok = recall >= 0.90
        at90 = float(dropped[ok].max()) if ok.any() else 0.0
        # within-passage AUC: pairs (gold, other) of the same row
        pairs = hits = 0.0
        rm = row_of[mask].numpy()
        for r in np.unique(rm):
            g, o = pp[(rm == r) & yy], pp[(rm == r) & ~yy]
            if len(g) and len(o):
                pairs += len(g) * len(o)
                hits += (g[:, None] > o[None, :]).sum() + 0.5 * (g[:, None] == o[None, :]).sum()
        report[source] = {
            "gold": int(yy.sum()),
            "other": int((~yy).sum()),
            "dropped_at_recall_0.90": at90,
            "auc": hits / max(pairs, 1),
        }
    return report


def aligned(rows, scored, target=0.90):
    """One threshold for all: the highest at which pooled held-out gold recall >= target; per source
    recall / dropped there."""
    p, valid, row_of, labels = scored
    mask = gold_mask(rows, valid, row_of)
    pp, yy = p[mask].numpy(), (labels[mask] == 1).numpy()
    ts = np.sort(pp[yy])
    t = float(ts[int(np.floor((1 - target) * len(ts)))]) - 1e-9
    out = {}
    rm = row_of[mask].numpy()
    for source in sorted({row["source"] for row in rows}):
        sel = np.isin(rm, [r for r, row in enumerate(rows) if row["source"] == source])
        if yy[sel].sum() and (~yy[sel]).sum():
            out[source] = (float((pp[sel & yy] > t).mean()), float((pp[sel & ~yy] <= t).mean()))
    return t, out


def feasible(rows, scored, gates=(("wikiqa", 0.5), ("scifact", 0.5), ("hotpotqa", None))):
    """Thresholds (fine grid) at which the held-out rows meet issue 10's gates at once: recall >= 0.90
    on every gated source and, where given, that share of other sentences dropped."""
    p, valid, row_of, labels = scored
    rm = row_of.numpy()
    pp, yy, vv = p.numpy(), (labels == 1).numpy(), valid.numpy()
    out = []
    for t in np.round(np.arange(0.02, 0.6, 0.01), 2):
        row = {}
        for source, _ in gates:
            sel = vv & np.isin(rm, [r for r, x in enumerate(rows) if x["source"] == source and x["gold"]])
            row[source] = (float((pp[sel & yy] > t).mean()), float((pp[sel & ~yy] <= t).mean()))
        ok = all(row[s][0] >= 0.9 and (need is None or row[s][1] >= need) for s, need in gates)
        out.append((t, ok, row))
    return out


def report(title, rows, w, b):
    """Print a head's held-out curves per source, the pooled-recall threshold and the thresholds that
    meet the gates."""
    scored = scores(rows, w, b)
    print(f"{title}:")
    for k, v in curves(rows, scored).items():
        print(f"  {k:10s} {v}")
    t, out = aligned(rows, scored)
    shares = ", ".join(f"{k} {r:.3f}/{d:.3f}" for k, (r, d) in out.items())
    print(f"  one threshold (pooled recall 0.90) p={t:.3f}: {shares}")
    table = feasible(rows, scored)
    good = [t for t, ok, _ in table if ok]
    print(f"  thresholds meeting the held-out gates: {good if good else 'none'}")
    for t, ok, row in table:
        if t in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3) or ok:
            print(f"    t={t:.2f} " + ", ".join(f"{k} {r:.3f}/{d:.3f}" for k, (r, d) in row.items()))


def add_feature_arguments(parser: argparse.ArgumentParser, cache: str, negatives: int) -> None:
    """The arguments :func:`frozen_features` reads (shared with session 18's ``context_head.py``)."""
    parser.add_argument("--data", default=".cache/s13/train")
    parser.add_argument("--model", default="ragprune/models/default")
    parser.add_argument("--cache", default=cache)
    parser.add_argument("--negatives", type=int, default=negatives)
    parser.add_argument("--msmarco", type=int, default=300)
    parser.add_argument("--spliced", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=13)


def frozen_features(args: argparse.Namespace, heldout, all_tokens=False):
    """``(w, b, training features, held-out features)``: the token head's linear map of the model at
    ``args.model`` (fp32, frozen; torch seeded with ``args.seed`` first) and :func:`cached_features` of
    :func:`training_rows` and ``heldout(data, rng)``."""
    torch.manual_seed(args.seed)
    model = RerankPruneModel.from_pretrained(args.model).float().eval()
    tokenizer = load_tokenizer(args.model)
    w0, b0 = (t.detach().float().clone() for t in model.heads["token"].linear_map())
    train, held = cached_features(
        args.cache,
        model,
        tokenizer,
        args.data,
        args.model,
        args.seed,
        lambda data, rng: (
            training_rows(data, rng, args.negatives, args.msmarco, args.spliced),
            heldout(data, rng),
        ),
        all_tokens=all_tokens,
    )
    return w0, b0, train, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_feature_arguments(parser, cache="/tmp/head_refit_features.pt", negatives=1)
    args = parser.parse_args()
    w0, b0, train, held = frozen_features(args, lambda data, rng: heldout_rows(data))
    report("shipped head on held-out", held, w0, b0)
    weightings = {
        "refit, data weights": ({}, True),
        "refit, scifact x3": ({"scifact": 3.0}, True),
        "refit, unbalanced": ({}, False),
        "refit, unbalanced, scifact x3": ({"scifact": 3.0}, False),
    }
    for name, (sw, balanced) in weightings.items():
        report(name, held, *fit_head(train, w0, b0, sw, balanced=balanced))


if __name__ == "__main__":
    main()
