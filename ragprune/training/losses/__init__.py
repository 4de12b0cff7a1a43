"""Losses of the joint rerank + prune model, one ``nn.Module`` per file with documented parameters.

* :class:`ListwiseDistillationLoss` (``listwise_distillation.py``): the rank head, KL to the teacher's
  softmax over each query's candidates (``temperature``, ``gold_mix``).
* :class:`SentenceContrastLoss` (``sentence_contrast.py``): the token head, class-balanced sentence BCE plus
  a within-passage pair margin (``pair_weight``, ``margin``).

``IGNORE`` and ``sentence_probabilities`` are re-exported from ``ragprune.training.labels`` and
``ragprune.training.sentences``, where they live.
"""

from ragprune.training.labels import IGNORE
from ragprune.training.losses.listwise_distillation import ListwiseDistillationLoss
from ragprune.training.losses.sentence_contrast import SentenceContrastLoss
from ragprune.training.sentences import sentence_probabilities

__all__ = ["IGNORE", "ListwiseDistillationLoss", "SentenceContrastLoss", "sentence_probabilities"]
