"""The token head's loss: sentence-level contrast inside each passage (class-balanced BCE + pair margin)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ragprune.training.labels import IGNORE
from ragprune.training.sentences import sentence_probabilities


class SentenceContrastLoss(nn.Module):
    """Sentence-level keep loss that does not reward following the passage score or the position.

    Two terms on the sentence probability ``p_s`` (mean token keep-probability, see
    :func:`sentence_probabilities`):

    * class-balanced binary cross-entropy per passage: in a passage holding both kept and dropped
      sentences each class carries half of the passage's weight, spread evenly over its sentences
      (so a one-sentence answer in a ten-sentence passage weighs as much as the nine others, and a
      long sentence no more than a short one); a passage of one class spreads its weight evenly;
    * a pairwise margin inside each passage holding both classes:
      ``softplus(margin - (logit p_gold - logit p_other))`` averaged over its (gold, other) pairs —
      it can only be lowered by scoring the sentences of one passage apart, which a head that copies
      the passage's relevance cannot do (a RankNet-style pairwise loss, Burges et al., ICML 2005,
      applied within a passage).

    Args:
        pair_weight: weight of the pairwise term.
        margin: logit margin of the pairwise term.

    Inputs of ``forward``:

    * ``token_logits`` ``[B, L]``: the token head's keep logits (any float dtype; computed in fp32);
    * ``sentence_ids`` ``[B, L]``: sentence index of each token in its row, ``-1`` outside sentences;
    * ``labels`` ``[B, S]``: 1 keep / 0 drop / ``IGNORE`` (-100) unlabelled, per sentence;
    * ``passage_weight`` ``[B]``: weight >= 0 of each row (``TrainConfig.irrelevant_weight``,
      ``silver_weight``, 1 for gold).

    Returns a scalar: the weighted mean over rows with a label (0 when nothing is labelled).
    ``train.py`` builds it as ``SentenceContrastLoss(config.pair_weight, config.pair_margin)``.
    """

    def __init__(self, pair_weight: float = 1.0, margin: float = 2.0) -> None:
        super().__init__()
        if pair_weight < 0:
            raise ValueError(f"pair_weight={pair_weight} must be >= 0")
        self.pair_weight = pair_weight
        self.margin = margin

    def config(self) -> dict[str, float]:
        """The loss's parameters (for logs and summaries)."""
        return {"pair_weight": self.pair_weight, "margin": self.margin}

    def extra_repr(self) -> str:
        return f"pair_weight={self.pair_weight}, margin={self.margin}"

    def forward(
        self,
        token_logits: torch.Tensor,
        sentence_ids: torch.Tensor,
        labels: torch.Tensor,
        passage_weight: torch.Tensor,
    ) -> torch.Tensor:
        probs, counts = sentence_probabilities(token_logits, sentence_ids, labels.shape[1])
        valid = (labels != IGNORE) & (counts > 0)
        positive = valid & (labels == 1)
        negative = valid & (labels == 0)
        n_pos = positive.sum(1, keepdim=True).float()
        n_neg = negative.sum(1, keepdim=True).float()
        mixed = (n_pos > 0) & (n_neg > 0)
        weight = torch.where(
            mixed,
            torch.where(positive, 0.5 / n_pos.clamp(min=1), 0.5 / n_neg.clamp(min=1)),
            1.0 / (n_pos + n_neg).clamp(min=1),
        )
        weight = weight * valid * passage_weight.unsqueeze(1)
        p = probs.clamp(1e-6, 1 - 1e-6)
        bce = F.binary_cross_entropy(p, (labels == 1).float(), reduction="none")
        has_any = valid.any(1)
        total = (weight * bce).sum() / (passage_weight * has_any).sum().clamp(min=1e-6)
        if self.pair_weight and bool(mixed.any()):
            logit = torch.logit(p)
            gap = logit.unsqueeze(2) - logit.unsqueeze(1)  # [B, S_gold, S_other]
            pairs = positive.unsqueeze(2) & negative.unsqueeze(1)
            per_pair = F.softplus(self.margin - gap) * pairs
            rows = mixed.squeeze(1)
            per_row = per_pair.sum((1, 2))[rows] / pairs.sum((1, 2))[rows]
            row_weight = passage_weight[rows]
            total = total + self.pair_weight * (per_row * row_weight).sum() / row_weight.sum().clamp(min=1e-6)
        return total
