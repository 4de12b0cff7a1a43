"""The per-query list stage: heads that read one query's whole candidate list (``reads = "candidates"``).

They run after the pointwise pass on the candidates' ``[CLS]`` vectors that pass already computed
(``PairColumns.vectors``), once per query, so a list-level score costs no second encoder pass.
"""

from __future__ import annotations

import numpy as np
import torch

from ragprune.models.encoder import RerankPruneModel
from ragprune.pipeline.runner import PairColumns


def list_scores(
    model: RerankPruneModel, columns: PairColumns, pair_lists: list[list[int | None]]
) -> list[dict[str, np.ndarray]]:
    """Per query, each list-level head's score per passage position (``[N]`` float64).

    ``pair_lists[q][i]`` is the pair (index into ``columns``) of query ``q``'s ``i``-th passage, or ``None``
    for a passage that was not encoded; those score ``-inf``. A head sees the vectors ``[M, H]`` of the
    query's ``M`` encoded passages in input order and returns ``[M]``.
    """
    heads = model.heads_reading("candidates")
    if not heads:
        return [{} for _ in pair_lists]
    if columns.vectors is None:
        raise ValueError("the runner kept no candidate vectors; build it from a model with list-level heads")
    results = []
    with torch.inference_mode():
        for pairs in pair_lists:
            positions = [i for i, p in enumerate(pairs) if p is not None and columns.chunks[p] > 0]
            vectors = columns.vectors[[pairs[i] for i in positions]]
            scores = {}
            for name, head in heads.items():
                values = np.full(len(pairs), -np.inf)
                if positions:
                    values[positions] = head(vectors).float().cpu().numpy()
                scores[name] = values
            results.append(scores)
    return results
