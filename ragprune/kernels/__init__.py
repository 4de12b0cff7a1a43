"""Token-to-sentence scoring after the encoder: a Triton kernel for CUDA and a torch path for everything else.

Modules, one job each: ``semantics`` (the rules, constants, inputs and outputs), ``dispatch`` (the
entry points and backend choice), ``torch_backend`` and ``triton_backend`` (the two implementations).
Triton is imported only when its backend runs, so importing this package costs no more than torch.
"""

from __future__ import annotations

from ragprune.kernels.dispatch import reduce_sentences, score_sentences
from ragprune.kernels.semantics import DECISION_TOLERANCE, FIXED_POINT_SCALE, REDUCTIONS, SentenceScores

__all__ = [
    "DECISION_TOLERANCE",
    "FIXED_POINT_SCALE",
    "REDUCTIONS",
    "SentenceScores",
    "reduce_sentences",
    "score_sentences",
]
