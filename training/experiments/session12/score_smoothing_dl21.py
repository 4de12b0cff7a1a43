"""Issue 11, on DL21 (the tuning set) only: is there list-level signal in the pointwise pass's [CLS]
vectors? Score smoothing towards the candidates most like the top-scored ones (pseudo-relevance feedback,
cluster hypothesis; cf. Diaz 2005, "Regularizing ad hoc retrieval scores"):
z(logit) + alpha * z(cos(vector, softmax(top-k logits / tau)-weighted mean of the top-k vectors)).
Output: score_smoothing_dl21.txt (the shipped model, 2-core CPU, BM25 top-100, every qrel).

RAGPRUNE_DATA=../shared/data python training/experiments/session12/score_smoothing_dl21.py
"""

import itertools

import ir_measures
import torch
from ir_measures import nDCG

from ragprune.data import load_trec_dl
from ragprune.pipeline import RerankPruner
from ragprune.types import Document, Query

dl = load_trec_dl("dl21")
qids = sorted(dl.run)
with RerankPruner.load("default", device="cpu") as pruner:
    encoded = pruner.candidate_vectors(
        [Query(q, dl.topics[q]) for q in qids],
        [[Document(p, dl.passages[p]) for p in dl.run[q]] for q in qids],
        truncate=True,
    )
lists = {q: (v.float(), torch.as_tensor(logits).float()) for q, (v, logits) in zip(qids, encoded)}
qrels = [ir_measures.Qrel(q, d, int(r)) for q, ds in dl.qrels.items() for d, r in ds.items()]


def ndcg(scores: dict) -> float:
    run = [ir_measures.ScoredDoc(q, d, float(s)) for q in qids for d, s in zip(dl.run[q], scores[q])]
    return ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10]


def zscore(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / (x.std() + 1e-6)


print("pointwise", round(ndcg({q: logits for q, (_, logits) in lists.items()}), 4))
for tau, alpha, k in itertools.product((0.5, 1.0, 2.0), (0.1, 0.25, 0.5, 1.0), (3, 5, 10)):
    smoothed = {}
    for q, (vectors, logits) in lists.items():
        unit = torch.nn.functional.normalize(vectors, dim=1)
        top = torch.topk(logits, min(k, len(logits))).indices
        centroid = torch.softmax(logits[top] / tau, 0) @ unit[top]
        smoothed[q] = zscore(logits) + alpha * zscore(unit @ centroid)
    print(f"tau {tau} alpha {alpha} k {k}: {ndcg(smoothed):.4f}", flush=True)
