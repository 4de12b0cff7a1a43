"""GAPrune's representative sampling of a calibration pool: k-means over the model's own query embeddings,
then the member nearest to each centroid (Tang & Yang 2025, arXiv 2509.10844, section 3.1; their
``features/sample.py`` does the same with FAISS and last-token pooling of a decoder).

Here the embedding is the mean of the encoder's last hidden states over the query's tokens
(``[CLS] query [SEP]`` alone; an encoder has no meaningful last token), L2-normalised, and k-means is a
small seeded Lloyd's algorithm with k-means++ seeding (no FAISS or scikit-learn needed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ragprune.models.encoder import RerankPruneModel
from ragprune.weight_pruning.calibration import CalibrationGroup, CalibrationSet


def embed_queries(
    model: RerankPruneModel,
    tokenizer: PreTrainedTokenizerBase,
    queries: Sequence[str],
    batch_size: int = 128,
    max_length: int = 64,
) -> np.ndarray:
    """``[N, H]`` float32 unit vectors: the mean last hidden state of each query's tokens (no passage)."""
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(queries), batch_size):
            batch = tokenizer(
                list(queries[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            hidden = model.encode(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(mean.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.backbone_config.hidden_size), np.float32)


def kmeans(points: np.ndarray, k: int, seed: int = 0, iterations: int = 25) -> np.ndarray:
    """Centroids ``[k, D]`` of ``points`` ``[N, D]`` (``k <= N``): k-means++ seeding (Arthur & Vassilvitskii
    2007), then Lloyd iterations; an empty cluster takes the point farthest from its centroid. Deterministic
    for a given ``seed``. ``ValueError`` if ``k`` is not in ``[1, N]``."""
    n = len(points)
    if not 1 <= k <= n:
        raise ValueError(f"k={k} clusters need between 1 and {n} points")
    rng = np.random.default_rng(seed)
    points = points.astype(np.float64)
    centroids = [points[rng.integers(n)]]
    distance = ((points - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = distance.sum()
        index = rng.choice(n, p=distance / total) if total > 0 else rng.integers(n)
        centroids.append(points[index])
        distance = np.minimum(distance, ((points - points[index]) ** 2).sum(1))
    center = np.stack(centroids)
    for _ in range(iterations):
        # ||x||^2 - 2 x.c + ||c||^2: no [N, k, D] tensor
        squared = (points**2).sum(1)[:, None] - 2 * points @ center.T + (center**2).sum(1)[None, :]
        assign = squared.argmin(1)
        new = center.copy()
        for c in range(k):
            members = points[assign == c]
            if len(members):
                new[c] = members.mean(0)
            else:
                far = int(squared[np.arange(n), assign].argmax())
                new[c] = points[far]
                assign[far] = c
        if np.allclose(new, center):
            break
        center = new
    return center.astype(np.float32)


def nearest_members(points: np.ndarray, centroids: np.ndarray) -> list[int]:
    """For each centroid, the index of the nearest point not already taken (so ``len(centroids)``
    distinct indices, in centroid order)."""
    squared = (points**2).sum(1)[:, None] - 2 * points @ centroids.T + (centroids**2).sum(1)[None, :]
    taken: set[int] = set()
    chosen = []
    for c in range(len(centroids)):
        for index in np.argsort(squared[:, c], kind="stable"):
            if int(index) not in taken:
                taken.add(int(index))
                chosen.append(int(index))
                break
    return chosen


def kmeans_sample(
    groups: Sequence[CalibrationGroup],
    size: int,
    model: RerankPruneModel,
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    seed: int = 0,
) -> CalibrationSet:
    """A :class:`CalibrationSet` of ``size`` groups chosen by k-means over the model's query embeddings
    (every group when the pool holds no more than ``size``). ``ValueError`` for an empty pool."""
    if not groups:
        raise ValueError(f"calibration pool {name!r} is empty; check its sources")
    if len(groups) <= size:
        return CalibrationSet(name, list(groups))
    points = embed_queries(model, tokenizer, [group.query for group in groups])
    chosen = nearest_members(points, kmeans(points, size, seed))
    return CalibrationSet(name, [groups[i] for i in chosen])
