"""Issue 10 probe (CPU): does a passage-relative term separate needed sentences from on-topic ones?

Sentence keep probability as shipped: p = sigmoid(s), s the token head's calibrated sentence logit.
Probe: p' = sigmoid(a * s + b * (s - max_passage s) + c), with (a, b, c) fitted by logistic regression
on the held-out *training* questions of the data build (valid_pruning.jsonl.gz: their gold passages and
their top non-gold candidates), then applied to the three dev sets at the round thresholds. Within one
passage the term keeps the order of the sentences, so it can only re-level whole passages.

Result (relative_score.txt): the fit gives b = -0.28 (a passage's best sentence, i.e. its relevance, is
evidence *for* its other sentences), and at equal gold recall no dev set drops more non-gold sentences
than the shipped scores do (SciFact at ~0.85 recall: 0.555 against 0.577): a dead end for issue 10.

Usage: RAGPRUNE_DATA=../shared/data python training/experiments/session13/relative_score.py \
    --data .cache/s13/train [--model ragprune/models/default] [--limit N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math

import numpy as np

from ragprune.data import data_root, read_pruning_jsonl
from ragprune.evaluation.pruning import context_text, score_pruning
from ragprune.pipeline import RerankPruner

SETS = {
    "HotpotQA dev": "pruning/hotpotqa_dev_distractor_100.jsonl",
    "WikiQA dev (answerable)": "pruning/wikiqa_dev_answerable.jsonl",
    "SciFact rationales dev": "pruning/scifact_rationales_dev.jsonl",
}
THRESHOLDS = (0.05, 0.1, 0.2, 0.3)
NEGATIVES = 5  # non-gold candidates per held-out question, in teacher order


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def sentence_logits(pruner: RerankPruner, questions, texts):
    """Per query, per passage in input order: [(span, s)] with s the calibrated sentence logit."""
    results = pruner.process(questions, texts, threshold=0.5, reorder=False)
    return [
        [[(x.span, logit(x.score)) for x in p.sentences] for p in sorted(r, key=lambda p: p.index)]
        for r in results
    ]


def features(passage):
    s = np.array([v for _, v in passage], dtype=np.float64)
    return np.stack([s, s - (s.max() if len(s) else 0.0)], axis=1) if len(s) else np.zeros((0, 2))


def heldout(pruner: RerankPruner, folder: str, limit: int):
    pool = {}
    with gzip.open(f"{folder}/pool.jsonl.gz", "rt") as f:
        for line in f:
            r = json.loads(line)
            pool[r["pid"]] = r["text"]
    with gzip.open(f"{folder}/valid_pruning.jsonl.gz", "rt") as f:
        records = [json.loads(line) for line in f][: limit or None]
    questions, texts, golds, sources = [], [], [], []
    for r in records:
        gold = r["gold"]
        others = sorted(
            (c for c in r["candidates"] if c["pid"] not in gold), key=lambda c: -c.get("teacher", 0)
        )[:NEGATIVES]
        pids = list(gold) + [c["pid"] for c in others]
        questions.append(r["query"])
        texts.append([pool[pid] for pid in pids])
        golds.append([gold.get(pid, []) for pid in pids])
        sources.append(r["source"])
    scored = sentence_logits(pruner, questions, texts)
    X, y, src = [], [], []
    for query, gold_spans, source in zip(scored, golds, sources):
        for passage, spans in zip(query, gold_spans):
            feats = features(passage)
            for (span, _), row in zip(passage, feats):
                length = span.end - span.start
                hit = any(min(span.end, e) - max(span.start, b) >= 0.5 * min(length, e - b) for b, e in spans)
                X.append(row)
                y.append(int(hit))
                src.append(source)
    return np.array(X), np.array(y), np.array(src)


def fit(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unpenalised logistic regression (scikit-learn): weights of ``[s, s - max, 1]``."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=np.inf, max_iter=1000).fit(X, y)
    return np.append(model.coef_[0], model.intercept_[0])


def dev_rows(pruner: RerankPruner, weights: np.ndarray | None, limit: int):
    for name, relative in SETS.items():
        examples = read_pruning_jsonl(data_root() / relative)[: limit or None]
        questions = [ex.question for ex in examples]
        texts = [[context_text(c.sentences)[0] for c in ex.contexts] for ex in examples]
        scored = sentence_logits(pruner, questions, texts)
        for t in THRESHOLDS:
            cut = logit(t)
            spans = []
            for query in scored:
                kept_query = []
                for passage in query:
                    feats = features(passage)
                    z = feats[:, 0] if weights is None else feats @ weights[:2] + weights[2]
                    kept_query.append([span for (span, _), v in zip(passage, z) if v > cut])
                spans.append(kept_query)
            report = score_pruning(examples, spans)
            yield name, t, report.recall, report.non_gold_dropped, report.compression


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the data build's folder (valid_pruning, pool)")
    p.add_argument("--model", default=None)
    p.add_argument("--limit", type=int, default=0)
    args = p.parse_args()
    pruner = RerankPruner.load(args.model)
    X, y, src = heldout(pruner, args.data, args.limit)
    weights = fit(X, y)
    print(f"held-out training sentences: {len(y)} ({y.sum()} gold); fitted [a, b, c] = {weights.round(3)}")
    for name, w in (("as shipped", None), ("relative term", weights)):
        print(f"\n{name}: set | t | recall | non-gold dropped in gold passages | tokens removed")
        for row in dev_rows(pruner, w, args.limit):
            print(f"  {row[0]:26s} {row[1]:<5} {row[2]:.3f} {row[3]:.3f} {row[4]:.3f}")


if __name__ == "__main__":
    main()
