"""The model's own joint loss on calibration groups, and the tensors it reads.

The loss is the training objective's two terms, built from ``ragprune.training.losses`` (nothing is
re-implemented here):

* rank: :class:`~ragprune.training.losses.ListwiseDistillationLoss` with ``gold_mix=1``, i.e. the
  cross-entropy of the softmax over a group's candidates against the uniform distribution over its
  relevant passages (ListNet top-one with gold labels; the calibration data has no teacher scores);
* token: :class:`~ragprune.training.losses.SentenceContrastLoss` (class-balanced sentence BCE plus the
  within-passage pair margin) on the passages that carry sentence labels; negatives label every sentence
  "drop" with weight ``irrelevant_weight`` (``TrainConfig.irrelevant_weight``).

Rows are built by the pipeline's own code (``ragprune.training.batching.collate_examples`` over
``ragprune.pipeline.encoding.build_rows``), so gradients see exactly the inputs inference builds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ragprune.pipeline.encoding import PairTemplate, tokenize_passages
from ragprune.training.batching import collate_examples
from ragprune.training.data import Example
from ragprune.training.labels import IGNORE, sentence_labels
from ragprune.training.losses import ListwiseDistillationLoss, SentenceContrastLoss
from ragprune.types import InputLimits
from ragprune.weight_pruning.calibration import CalibrationGroup

Batch = dict[str, torch.Tensor]
"""``input_ids``, ``token_type_ids``, ``attention_mask``, ``sentence_ids`` ``[Q*G, L]`` int64,
``sentence_labels`` ``[Q*G, S]`` int64, ``passage_weight`` ``[Q*G]`` float32 and ``gold`` ``[Q, G]`` bool;
when a group's passages carry external teacher scores (``CalibrationPassage.teacher``), also ``teacher``
``[Q, G]`` float32 (NaN where a passage has none)."""

IRRELEVANT_WEIGHT = 0.25
"""Token-loss weight of a negative passage (all sentences "drop"), as ``TrainConfig.irrelevant_weight``."""


def group_batches(
    groups: Sequence[CalibrationGroup],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    groups_per_batch: int = 1,
    irrelevant_weight: float = IRRELEVANT_WEIGHT,
) -> list[Batch]:
    """Tensors of ``groups`` (CPU), ``groups_per_batch`` groups per batch (the last batch may hold fewer).

    Only a passage's first encoder row is used (calibration passages are abstracts and paragraphs that fit
    the window). ``ValueError`` if the groups differ in size.
    """
    if len({len(g.passages) for g in groups}) > 1:
        raise ValueError("calibration groups of one batch list need the same number of candidates")
    template = PairTemplate.from_tokenizer(tokenizer)
    limits = InputLimits.for_window(max_length, template.overhead)
    pad_id = tokenizer.pad_token_id or 0
    batches = []
    for start in range(0, len(groups), groups_per_batch):
        chunk = groups[start : start + groups_per_batch]
        examples: list[Example] = []
        for group in chunk:
            query_ids = np.asarray(
                tokenizer(group.query, add_special_tokens=False)["input_ids"][: limits.max_query_tokens],
                dtype=np.int64,
            )
            passages = tokenize_passages(
                tokenizer, [p.text for p in group.passages], [p.title for p in group.passages]
            )
            for passage, tokenized in zip(group.passages, passages):
                if passage.gold_spans is None:
                    labels = np.full(len(tokenized.sentences), IGNORE, dtype=float)
                else:
                    labels = sentence_labels(tokenized, passage.gold_spans, None, passage.relevant, 0.0)
                weight = 1.0 if passage.relevant else irrelevant_weight
                examples.append(Example(query_ids, tokenized, labels, weight))
        batch = collate_examples(examples, template, max_length, pad_id)
        batch["gold"] = torch.tensor([[p.relevant for p in group.passages] for group in chunk])
        if any(p.teacher is not None for group in chunk for p in group.passages):
            batch["teacher"] = torch.tensor(
                [[math.nan if p.teacher is None else p.teacher for p in group.passages] for group in chunk],
                dtype=torch.float32,
            )
        batches.append(batch)
    return batches


class JointLoss(nn.Module):
    """``rank_weight * rank + token_weight * token`` on a :data:`Batch` and the model's outputs.

    Args:
        rank_weight: weight of the listwise rank term (>= 0).
        token_weight: weight of the sentence term (>= 0).
        pair_weight, margin: :class:`SentenceContrastLoss`'s pair term (``TrainConfig.pair_weight``,
            ``pair_margin``).

    ``forward(outputs, batch)`` reads ``outputs["rank"]`` ``[Q*G]`` and ``outputs["token"]`` ``[Q*G, L]``
    and returns ``{"loss", "rank", "token"}`` scalars (``loss`` carries the gradient).
    """

    def __init__(
        self,
        rank_weight: float = 1.0,
        token_weight: float = 1.0,
        pair_weight: float = 1.0,
        margin: float = 2.0,
    ) -> None:
        super().__init__()
        if rank_weight < 0 or token_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got rank={rank_weight}, token={token_weight}")
        self.rank_weight, self.token_weight = rank_weight, token_weight
        self.rank = ListwiseDistillationLoss(temperature=1.0, gold_mix=1.0)
        self.token = SentenceContrastLoss(pair_weight, margin)

    def forward(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        gold = batch["gold"]
        scores = outputs["rank"].float().view(gold.shape)
        rank = self.rank(scores, torch.zeros_like(scores), gold)
        token = self.token(
            outputs["token"], batch["sentence_ids"], batch["sentence_labels"], batch["passage_weight"]
        )
        return {"loss": self.rank_weight * rank + self.token_weight * token, "rank": rank, "token": token}


def model_inputs(batch: Batch, device: torch.device | str) -> dict[str, torch.Tensor]:
    """The three encoder inputs of a batch on ``device``."""
    return {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")}


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    """Every tensor of the batch on ``device``."""
    return {name: tensor.to(device) for name, tensor in batch.items()}
