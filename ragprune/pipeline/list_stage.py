"""The per-query list stage: heads that read one query's whole candidate list (``reads = "candidates"``).

They run after the pointwise pass on the candidates' ``[CLS]`` vectors and rank logits that pass already
computed (``PairColumns``), once per query, so a list-level score costs no second encoder pass. Two modes
(``MODES``), from the same head:

- ``"full"`` (full ranking): the head sees all of a query's candidates at once; its logits are the scores;
- ``"listwise"`` (FIRST's sliding windows, Reddy et al. 2024, section 3.2): starting from the pointwise order,
  windows of ``window`` candidates, moved ``stride`` up the list at a time from the bottom to the top
  (``ragprune.pipeline.modes.sliding_windows``, rank_llm's order, shared with ``FirstLLM``), are each
  reordered by the head's logits for that window; the score is the final order, as
  ``N - position`` (``N`` for the best of ``N`` candidates, 1 for the last).
"""

from __future__ import annotations

import numpy as np
import torch

from ragprune.models.encoder import RerankPruneModel
from ragprune.pipeline.modes import MODES, STRIDE, WINDOW, sliding_windows
from ragprune.pipeline.runner import PairColumns


def list_scores(
    model: RerankPruneModel,
    columns: PairColumns,
    pair_lists: list[list[int | None]],
    mode: str = "full",
    window: int = WINDOW,
    stride: int = STRIDE,
) -> list[dict[str, np.ndarray]]:
    """Per query, each list-level head's score per passage position (``[N]`` float64); none in
    ``"pointwise"`` mode.

    ``pair_lists[q][i]`` is the pair (index into ``columns``) of query ``q``'s ``i``-th passage, or ``None``
    for a passage that was not encoded; those score ``-inf`` and are never shown to a head. A head gets the
    vectors ``[M, H]`` and rank logits ``[M]`` of ``M`` encoded passages and returns ``[M]`` logits.
    ``ValueError`` for an unknown mode or bad window sizes (``RerankPruner`` checks that the model has a
    list-level head before it gets here).
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; use one of {MODES}")
    heads = model.heads_reading("candidates")
    if mode == "pointwise":
        return [{} for _ in pair_lists]
    if window < 2 or not 0 < stride <= window:
        raise ValueError(f"window={window}, stride={stride}: use window >= 2 and 0 < stride <= window")
    if columns.vectors is None:
        raise ValueError("the runner kept no candidate vectors; build it from a model with list-level heads")
    rank = torch.as_tensor(columns.scores["rank"], device=columns.vectors.device)
    results = []
    with torch.inference_mode():
        for pairs in pair_lists:
            positions = [i for i, p in enumerate(pairs) if p is not None and columns.chunks[p] > 0]
            index = torch.as_tensor([pairs[i] for i in positions], dtype=torch.long, device=rank.device)
            scores = {}
            for name, head in heads.items():
                values = np.full(len(pairs), -np.inf)
                if positions:
                    vectors, logits = columns.vectors[index], rank[index]
                    if mode == "full":
                        values[positions] = head(vectors, logits).float().cpu().numpy()
                    else:
                        values[positions] = sliding_window_scores(head, vectors, logits, window, stride)
                scores[name] = values
            results.append(scores)
    return results


def sliding_window_scores(
    head: torch.nn.Module, vectors: torch.Tensor, logits: torch.Tensor, window: int, stride: int
) -> np.ndarray:
    """FIRST's sliding-window pass over one query's ``M`` candidates (``vectors [M, H]``, pointwise
    ``logits [M]``): ``[M]`` scores ``M - final position`` (see the module docstring)."""
    count = len(logits)
    pointwise = logits.float().cpu().numpy()
    order = sorted(range(count), key=lambda i: (-pointwise[i], i))  # best first; ties keep input order
    for start, end in sliding_windows(count, window, stride):
        members = order[start:end]
        member_index = torch.as_tensor(members, dtype=torch.long, device=vectors.device)
        window_logits = head(vectors[member_index], logits[member_index]).detach().float().cpu().numpy()
        ranked = sorted(range(len(members)), key=lambda k: (-window_logits[k], k))
        order[start:end] = [members[k] for k in ranked]
    scores = np.empty(count)
    scores[order] = np.arange(count, 0, -1, dtype=np.float64)
    return scores
