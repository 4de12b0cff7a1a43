"""Training batches: examples and candidate groups padded into tensors.

Rows are built and padded by the pipeline's own code (``ragprune.pipeline.encoding.build_rows`` and
``ragprune.pipeline.collate.pad_rows``), so training sees exactly the inputs inference builds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ragprune.pipeline.collate import pad_rows
from ragprune.pipeline.encoding import PairTemplate, TokenizedPassage, build_rows
from ragprune.training.data import Candidate, Example, Group
from ragprune.training.labels import IGNORE

Batch = dict[str, torch.Tensor]
"""Tensors by name: ``input_ids``, ``token_type_ids``, ``attention_mask``, ``sentence_ids`` ``[B, L]``,
``sentence_labels`` ``[B, S]``, ``passage_weight`` ``[B]``; group batches add ``teacher`` and ``gold``
``[Q, G]``."""


def collate_examples(
    examples: Sequence[Example], template: PairTemplate, max_length: int, pad_id: int
) -> Batch:
    """Pad (query ids, passage, sentence labels, token-loss weight) examples into one batch (on the CPU).

    Only a passage's first row is encoded (training passages are built to fit the window); sentences
    with no token in it get no label in effect (the losses skip sentences without tokens). Returns
    ``input_ids``/``token_type_ids``/``attention_mask``/``sentence_ids`` ``[B, L]`` int64 (``L`` the
    longest row), ``sentence_labels`` ``[B, S]`` int64 (``IGNORE`` beyond a row's sentences) and
    ``passage_weight`` ``[B]`` float32.
    """
    rows = [build_rows(query, passage, template, max_length)[0] for query, passage, _, _ in examples]
    sentences = max(1, max(len(labels) for _, _, labels, _ in examples))
    sentence_labels = np.full((len(rows), sentences), IGNORE, dtype=np.int64)
    for r, (_, _, labels, _) in enumerate(examples):
        sentence_labels[r, : len(labels)] = labels
    return pad_rows(rows, pad_id).tensors() | {
        "sentence_labels": torch.from_numpy(sentence_labels),
        "passage_weight": torch.tensor([weight for *_, weight in examples], dtype=torch.float32),
    }


def collate_groups(
    groups: Sequence[Group],
    chosen: Sequence[Sequence[Candidate]],
    passage: Callable[[str], TokenizedPassage],
    template: PairTemplate,
    max_length: int,
    pad_id: int,
) -> Batch:
    """One step's batch: the chosen candidates of each group (``Q`` groups of ``G`` candidates each, in
    order), as :func:`collate_examples` rows ``B = Q * G``, plus ``teacher`` ``[Q, G]`` float32 (z-scored
    teacher scores) and ``gold`` ``[Q, G]`` bool for the rank loss. ``passage(pid)`` gives a tokenized
    pool passage. ``ValueError`` if the groups do not hold the same number of chosen candidates."""
    sizes = {len(candidates) for candidates in chosen}
    if len(sizes) != 1:
        raise ValueError(f"every group of a batch needs the same number of candidates, got {sorted(sizes)}")
    examples = [
        Example(group.query_ids, passage(c.pid), c.labels, c.weight)
        for group, candidates in zip(groups, chosen)
        for c in candidates
    ]
    batch = collate_examples(examples, template, max_length, pad_id)
    batch["teacher"] = torch.tensor([[c.teacher for c in candidates] for candidates in chosen])
    batch["gold"] = torch.tensor(
        [[c.pid in group.gold for c in candidates] for group, candidates in zip(groups, chosen)]
    )
    return batch


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    """The batch's tensors on ``device`` (non-blocking copies)."""
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}
