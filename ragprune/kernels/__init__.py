"""Token-to-sentence scoring after the encoder: a Triton kernel for CUDA and a torch path for everything else.

Triton is imported only when its backend runs, so importing this package costs no more than torch.
"""

from __future__ import annotations

from ragprune.kernels.sentence_scoring import DECISION_TOLERANCE, REDUCTIONS, SentenceScores, score_sentences

__all__ = ["DECISION_TOLERANCE", "REDUCTIONS", "SentenceScores", "score_sentences"]
