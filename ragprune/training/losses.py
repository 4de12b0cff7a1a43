"""Losses of the joint rerank + prune model, one ``nn.Module`` each with documented parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100


def sentence_probabilities(
    token_logits: torch.Tensor, sentence_ids: torch.Tensor, num_sentences: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean token keep-probability per sentence, the quantity the pipeline thresholds ("sentence rounding").

    Args:
        token_logits: ``[B, L]`` keep logits of the token head.
        sentence_ids: ``[B, L]`` sentence index of each token within its row, ``-1`` for tokens of no
            sentence (query, title, special and padding tokens).
        num_sentences: ``S``, at least one more than the largest sentence index.

    Returns:
        ``(probabilities [B, S], token_counts [B, S])``; a sentence with no token in the row has count 0
        and probability 0.
    """
    batch, _ = token_logits.shape
    inside = sentence_ids >= 0
    slot = torch.where(inside, sentence_ids, 0) + num_sentences * torch.arange(
        batch, device=token_logits.device
    ).unsqueeze(1)
    probs = torch.sigmoid(token_logits.float()) * inside
    sums = torch.zeros(batch * num_sentences, device=token_logits.device).index_add_(
        0, slot.flatten(), probs.flatten()
    )
    counts = torch.zeros_like(sums).index_add_(0, slot.flatten(), inside.flatten().float())
    sums, counts = sums.view(batch, num_sentences), counts.view(batch, num_sentences)
    return sums / counts.clamp(min=1), counts


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

    ``forward(token_logits [B, L], sentence_ids [B, L], labels [B, S], passage_weight [B])`` with
    ``labels`` 1 keep / 0 drop / -100 unlabelled per sentence and ``passage_weight`` >= 0 per row;
    returns a scalar (0 when nothing is labelled).
    """

    def __init__(self, pair_weight: float = 1.0, margin: float = 2.0) -> None:
        super().__init__()
        self.pair_weight = pair_weight
        self.margin = margin

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
