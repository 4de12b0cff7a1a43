"""The default pruning threshold and the held-out pruning measures behind it.

Read on training data only: the held-out gold-labelled training questions of ``valid_pruning.jsonl.gz``
(whole candidate lists, :func:`pick_threshold`) and the held-out answer-bearing passages
(:func:`token_outputs` then :func:`heldout_pruning`: gold recall, other sentences dropped, recall by the
gold block's position in spliced passages). The grids live in ``ragprune.training.config``
(``ROUND_THRESHOLDS``, ``THRESHOLD_GRID``) as ``TrainConfig`` defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ragprune.training.batching import collate_examples, to_device
from ragprune.training.calibration import TokenOutputs
from ragprune.training.config import ROUND_THRESHOLDS, THRESHOLD_GRID
from ragprune.training.data import Example, Group
from ragprune.training.labels import IGNORE
from ragprune.training.sentences import sentence_probabilities

if TYPE_CHECKING:
    from ragprune.models import RerankPruneModel
    from ragprune.pipeline import RerankPruner
    from ragprune.pipeline.encoding import PairTemplate

__all__ = ["ROUND_THRESHOLDS", "THRESHOLD_GRID", "heldout_pruning", "pick_threshold", "token_outputs"]


def pick_threshold(
    pruner: RerankPruner,
    groups: Sequence[Group],
    texts: Mapping[str, str],
    target: float,
    grid: Sequence[float] = THRESHOLD_GRID,
) -> dict:
    """The highest threshold in ``grid`` whose gold-sentence recall on ``groups`` is >= ``target``.

    Every candidate of each group holding a gold passage is pruned by ``pruner`` (one pass at threshold
    0, then every threshold applied to the sentence scores). Returns ``{"threshold", "recall",
    "removed"}``: ``removed`` is the share of characters dropped over those candidates; threshold 0
    (keep everything, recall 1) when no grid value reaches the target. ``ValueError`` (from
    ``require_rethresholdable``) when the pruner's sentence reduction cannot be re-thresholded.
    """
    from ragprune.pipeline.results import require_rethresholdable

    require_rethresholdable(pruner.reduce)
    queries, passages, gold = [], [], []
    for group in groups:
        golds = [c for c in group.candidates if c.pid in group.gold]
        if not golds:
            continue
        queries.append(group.query)
        passages.append([{"id": c.pid, "text": texts[c.pid]} for c in group.candidates])
        gold.append({c.pid: c.labels for c in golds})
    results = pruner.process(queries, passages, threshold=0.0, reorder=False)
    scores_kept, tokens = [], []
    for result, gold_labels in zip(results, gold):
        for passage in result:
            scores = np.asarray([s.score for s in passage.sentences])
            lengths = np.asarray([len(s.span) for s in passage.sentences])
            labels = gold_labels.get(passage.document.id, np.zeros(len(scores)))
            scores_kept.append((scores, labels, lengths))
            tokens.append(lengths.sum())
    best = {"threshold": 0.0, "recall": 1.0, "removed": 0.0}
    for threshold in grid:
        hit = sum(((s > threshold) & (lab > 0)).sum() for s, lab, _ in scores_kept)
        total = sum((lab > 0).sum() for _, lab, _ in scores_kept)
        kept_chars = sum(length[s > threshold].sum() for s, _, length in scores_kept)
        recall = hit / max(1, total)
        if recall >= target:
            best = {
                "threshold": float(threshold),
                "recall": float(recall),
                "removed": float(1 - kept_chars / max(1, sum(tokens))),
            }
    return best


def token_outputs(
    model: RerankPruneModel,
    examples: Sequence[Example],
    template: PairTemplate,
    max_length: int,
    pad_id: int,
    device: torch.device,
    batch_size: int = 128,
) -> list[TokenOutputs]:
    """The token head's outputs on ``examples``: ``(token_logits fp32, sentence_ids, sentence_labels)``
    per batch of ``batch_size`` examples, on ``device`` (eval mode, no gradient; the model stays in eval
    mode)."""
    batches = []
    model.eval()
    with torch.no_grad():
        for first in range(0, len(examples), batch_size):
            batch = collate_examples(examples[first : first + batch_size], template, max_length, pad_id)
            batch = to_device(batch, device)
            out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            batches.append((out["token"].float(), batch["sentence_ids"], batch["sentence_labels"]))
    return batches


def heldout_pruning(
    batches: Sequence[TokenOutputs],
    positions: Sequence[str],
    threshold: float,
    sources: Sequence[str] = (),
) -> dict:
    """Sentence decisions at ``threshold`` (probability > threshold keeps) on held-out answer-bearing
    passages.

    ``positions[i]`` names row ``i``'s gold position (rows beyond it count as ``"whole"``); ``sources[i]``
    its dataset (:meth:`~ragprune.training.data.TrainingData.heldout_sources`; none given: no per-source
    figures; ``ValueError`` unless one per row). Returns ``{"threshold", "gold_recall", "other_dropped",
    "gold_recall_by_position", "by_source"}``: the share of gold sentences kept, the share of the other
    sentences dropped, gold recall per position (``None`` for a position without gold, such as hop
    negatives), and per source ``{"gold_recall", "other_dropped", "gold", "other"}`` (``None`` for a share
    without sentences; ``gold`` and ``other`` count the sentences). Pooled figures are dominated by the
    largest source and by the easy off-topic fillers of spliced passages; issue 10's gates are per
    dataset, so ``by_source`` is what predicts them. Sentences without a label or a token do not count.
    """
    kept, gold, where = [], [], []
    row = 0
    for logits, sentence_ids, labels in batches:
        probs, counts = sentence_probabilities(logits, sentence_ids, labels.shape[1])
        valid = (labels != IGNORE) & (counts > 0)
        for r in range(len(labels)):
            mask = valid[r]
            kept.append((probs[r][mask] > threshold).cpu().numpy())
            gold.append((labels[r][mask] == 1).cpu().numpy())
            where.append(positions[row] if row < len(positions) else "whole")
            row += 1
    if sources and len(sources) != len(kept):
        raise ValueError(f"{len(sources)} sources for {len(kept)} held-out rows: give one source per row")
    k, g = np.concatenate(kept), np.concatenate(gold)
    by_position = {name: _shares(kept, gold, where, name)["gold_recall"] for name in sorted(set(where))}
    by_source = {name: _shares(kept, gold, sources, name) for name in sorted(set(sources))}
    return {
        "threshold": threshold,
        "gold_recall": float((k & g).sum() / max(1, g.sum())),
        "other_dropped": float((~k & ~g).sum() / max(1, (~g).sum())),
        "gold_recall_by_position": by_position,
        "by_source": by_source,
    }


def _shares(kept: list[np.ndarray], gold: list[np.ndarray], names: Sequence[str], name: str) -> dict:
    """Over the rows ``i`` with ``names[i] == name``: gold recall and share of other sentences dropped
    (``None`` without such sentences), and the counts of gold and other sentences."""
    rows = [i for i, n in enumerate(names) if n == name]
    ks, gs = np.concatenate([kept[i] for i in rows]), np.concatenate([gold[i] for i in rows])
    return {
        "gold_recall": float((ks & gs).sum() / gs.sum()) if gs.any() else None,
        "other_dropped": float((~ks & ~gs).sum() / (~gs).sum()) if (~gs).any() else None,
        "gold": int(gs.sum()),
        "other": int((~gs).sum()),
    }
