"""The end of a run: calibrate, choose the default threshold, measure held-out pruning, save the model.

Shared by ``training/train.py`` (its best epoch) and ``training/soup.py`` (a weight average). In order:

1. the token head's outputs on the held-out answer-bearing passages (one pass);
2. sentence calibration fitted on them and folded into the token head (``config.calibrate_sentences``);
3. DL21 validation pairs (:class:`~ragprune.training.validation.RankingValidator`) for Platt scaling of
   the rank logit, and the default threshold on the held-out questions (``config.target_recall``, over
   ``config.round_thresholds`` once calibrated, else ``config.threshold_grid``);
4. held-out pruning at the default threshold and at every round threshold;
5. the fp16 model in ``config.out / "model"`` with its provenance (the whole :class:`TrainConfig` as
   JSON values) and ``train_config.json`` beside its weights; ``config.out / "summary.json"``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import torch

from ragprune.training.calibration import fit_platt, fit_sentence_calibration, fold_calibration
from ragprune.training.thresholds import heldout_pruning, pick_threshold, token_outputs
from ragprune.training.validation import RankingValidator, inference_pruner

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ragprune.models import RerankPruneModel
    from ragprune.training.config import TrainConfig
    from ragprune.training.data import TrainingData

log = logging.getLogger(__name__)

MODEL_FOLDER = "model"
SUMMARY_FILE = "summary.json"


def finalize(
    model: RerankPruneModel,
    tokenizer: PreTrainedTokenizerBase,
    device: torch.device,
    data: TrainingData,
    config: TrainConfig,
    record: dict[str, Any],
) -> dict[str, Any]:
    """Run the steps of the module docstring on ``model`` (modified in place: calibration folded, config
    filled, moved to the CPU) and return the summary.

    ``record`` holds the run's ``history`` (validation records) and its ``best_*`` metrics, plus anything
    else for the summary (``soup.py``'s ingredients); ``best_*`` keys become ``provenance.metrics``.
    """
    from ragprune.models.config import Calibration, Provenance
    from ragprune.pipeline.encoding import PairTemplate

    template = PairTemplate.from_tokenizer(tokenizer)
    pad_id = tokenizer.pad_token_id or 0
    heldout = data.heldout_examples()
    outputs = (
        token_outputs(model, heldout, template, config.max_length, pad_id, device, config.heldout_batch_size)
        if heldout
        else []
    )
    sentence_calibration = None
    if config.calibrate_sentences and outputs:
        sentence_calibration = fit_sentence_calibration(outputs)
        fold_calibration(model, *sentence_calibration)
        a, b = sentence_calibration  # the folded head's outputs, without another pass
        outputs = [(a * logits + b, sentence_ids, labels) for logits, sentence_ids, labels in outputs]
        log.info("sentence calibration (scale, bias) folded into the token head: %s", sentence_calibration)
    grid = config.round_thresholds if sentence_calibration else config.threshold_grid
    validator = RankingValidator.from_records(data.valid)
    with inference_pruner(model, tokenizer, device, config.eval_batch_size) as pruner:
        pairs = validator.validate_model(pruner, data.texts).pairs
        threshold = pick_threshold(pruner, data.threshold_groups, data.texts, config.target_recall, grid)
    scale, bias = fit_platt(pairs, config.relevant_grade)
    model.config.threshold = threshold["threshold"]
    if outputs:
        positions, sources = data.valid_spliced_positions, data.heldout_sources()
        threshold["heldout_pruning"] = heldout_pruning(outputs, positions, threshold["threshold"], sources)
        threshold["heldout_sweep"] = [
            heldout_pruning(outputs, positions, t, sources) for t in config.round_thresholds
        ]
        log.info("held-out pruning at the default threshold: %s", threshold["heldout_pruning"])
    model.config.calibration = Calibration(scale, bias)
    model.config.provenance = Provenance(
        train_config=config.to_dict(),
        history=record["history"],
        metrics={k.removeprefix("best_"): v for k, v in record.items() if k.startswith("best_")},
        threshold_selection=threshold,
        sentence_calibration=sentence_calibration,
    )
    folder = config.out / MODEL_FOLDER
    model.cpu().save_pretrained(folder, tokenizer, dtype=torch.float16)
    config.save(folder)
    summary = {**record, "threshold": threshold, "calibration": [scale, bias]}
    (config.out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    log.info("saved %s: %s", folder, json.dumps(summary))
    return summary
