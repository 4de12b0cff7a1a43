"""Losses of the joint rerank + prune model, one ``nn.Module`` per file with documented parameters.

* :class:`ListwiseDistillationLoss` (``listwise_distillation.py``): the rank head, KL to the teacher's
  softmax over each query's candidates (``temperature``, ``gold_mix``).
* :class:`SentenceContrastLoss` (``sentence_contrast.py``): the token head, class-balanced sentence BCE plus
  a within-passage pair margin (``pair_weight``, ``margin``).
* :class:`RankWeightedRankNetLoss` (``rank_weighted_ranknet.py``): a list head, FIRST's rank-weighted
  RankNet over the teacher's order.
* :class:`TopWeightedListMLELoss` (``top_weighted_listmle.py``): a list head on full lists, ListMLE with
  full ranking's importance weights.

``IGNORE`` and ``sentence_probabilities`` are re-exported from ``ragprune.training.labels`` and
``ragprune.training.sentences``, where they live.
"""

from ragprune.training.labels import IGNORE
from ragprune.training.losses.listwise_distillation import ListwiseDistillationLoss
from ragprune.training.losses.rank_weighted_ranknet import RankWeightedRankNetLoss
from ragprune.training.losses.sentence_contrast import SentenceContrastLoss
from ragprune.training.losses.top_weighted_listmle import TopWeightedListMLELoss
from ragprune.training.sentences import sentence_probabilities

__all__ = [
    "IGNORE",
    "ListwiseDistillationLoss",
    "RankWeightedRankNetLoss",
    "SentenceContrastLoss",
    "TopWeightedListMLELoss",
    "sentence_probabilities",
]
