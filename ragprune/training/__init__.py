"""Training library of ragprune: what ``training/*.py`` (thin scripts) are made of. Nothing here runs at
inference time.

Modules, one job each:

* ``config``: :class:`TrainConfig`, every hyper-parameter of a run (defaults, ``--help`` text, JSON,
  ``train_config.json``); the command line of ``training/train.py`` is generated from it.
* ``files``: the gzip JSON-lines files of a training-data folder (names, read, write, copy).
* ``teachers``: the bi-encoder teachers (MiniLM, MPNet) and their on-disk embedding cache.
* ``ensembles``: teacher scores combined per query (raw, z-score mean, reciprocal-rank fusion).
* ``labels``: sentence labels (gold from character spans, silver from teacher cosines), ``IGNORE``.
* ``sentences``: token logits to sentence probabilities, differentiably.
* ``data``: a data folder in memory: groups, candidates, examples, sampling of a step's candidates.
* ``batching``: examples and groups padded into tensors (with the pipeline's ``pad_rows``).
* ``losses``: one ``nn.Module`` per file: ``ListwiseDistillationLoss`` (rank head),
  ``SentenceContrastLoss`` (token head), ``RankWeightedRankNetLoss`` and ``TopWeightedListMLELoss``
  (list head).
* ``optim``: AdamW with encoder / head learning rates, warm-up then linear decay.
* ``checkpoint``: resumable training state (``checkpoint.pt``).
* ``validation``: the one ranking validator (DL21 nDCG@10) every script uses.
* ``calibration``: Platt scaling of the rank logit; sentence calibration folded into the token head.
* ``thresholds``: the default pruning threshold and the held-out pruning measures.
* ``finalize``: the end of a run: calibrate, choose the threshold, save the model with its config.
* ``selection``: which variant of a sweep to keep (``training/gpu_sweep.sh``), from the runs' summaries.
* ``list_head``: a list-level head trained on a frozen model's candidate vectors (``train_list_head.py``).
* ``decontam``: the evaluation sets training data must not repeat (query files, normalised-text key).
* ``synthetic``: LM-generated training queries (prompt, cleaning, evaluation overlap, teacher agreement).

The names below are importable from ``ragprune.training`` directly; they load on first use, so the
light modules (``files``, ``ensembles``, ``labels``) do not pull in torch.
"""

from __future__ import annotations

from ragprune.lazy import lazy_exports

_LAZY = {
    "TrainConfig": "ragprune.training.config",
    "ListwiseDistillationLoss": "ragprune.training.losses",
    "SentenceContrastLoss": "ragprune.training.losses",
    "RankWeightedRankNetLoss": "ragprune.training.losses",
    "TopWeightedListMLELoss": "ragprune.training.losses",
    "RankingValidator": "ragprune.training.validation",
    "ValidationResult": "ragprune.training.validation",
    "TrainingData": "ragprune.training.data",
    "load_training_data": "ragprune.training.data",
    "fit_platt": "ragprune.training.calibration",
    "fit_sentence_calibration": "ragprune.training.calibration",
    "fold_calibration": "ragprune.training.calibration",
    "pick_threshold": "ragprune.training.thresholds",
    "finalize": "ragprune.training.finalize",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_exports(__name__, _LAZY)
