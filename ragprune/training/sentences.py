"""Token outputs to sentence probabilities, differentiably: what the losses, the calibration and the
held-out pruning measure read.

The pipeline thresholds the same quantity ("sentence rounding": the mean token keep-probability of a
sentence); this version works on padded training batches and keeps the gradient.
"""

from __future__ import annotations

import torch


def sentence_probabilities(
    token_logits: torch.Tensor, sentence_ids: torch.Tensor, num_sentences: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean token keep-probability per sentence.

    Args:
        token_logits: ``[B, L]`` keep logits of the token head.
        sentence_ids: ``[B, L]`` sentence index of each token within its row, ``-1`` for tokens of no
            sentence (query, title, special and padding tokens).
        num_sentences: ``S``, at least one more than the largest sentence index.

    Returns:
        ``(probabilities [B, S], token_counts [B, S])`` in fp32; a sentence with no token in the row has
        count 0 and probability 0.
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
