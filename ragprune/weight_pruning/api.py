"""``compress``: score, prune and (optionally) recover a rerank + prune model in one call.

    from ragprune.weight_pruning import build_calibration, compress

    model, tokenizer = load_model("default")
    calibration = build_calibration(model, tokenizer, domain=["domain"], general=["general"], size=128)
    result = compress(model, tokenizer, method="gaprune", structure="ffn", sparsity=0.5,
                      calibration=calibration, recover_steps=200)
    result.save("minilm-ffn50")          # loads with RerankPruner.load("minilm-ffn50")

Methods: ``magnitude``, ``wanda``, ``fisher``, ``gaprune`` (``ragprune.weight_pruning.importance``).
Structures: ``unstructured`` and ``N:M`` (e.g. ``2:4``) masks (``unstructured``), ``heads``, ``ffn``,
``layers`` and ``heads+ffn`` removal (``structured``). Calibration statistics can be measured once with
:func:`measure` and passed to many :func:`compress` calls (``eval/weight_pruning.py`` does).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from ragprune.models.encoder import RerankPruneModel
from ragprune.weight_pruning.calibration import (
    DEFAULT_CANDIDATES,
    CalibrationGroup,
    CalibrationSet,
    load_source,
)
from ragprune.weight_pruning.importance import METHODS, DAIConfig, structure_scores, weight_scores
from ragprune.weight_pruning.loss import Batch, JointLoss, group_batches
from ragprune.weight_pruning.measure import fp16_megabytes, parameter_counts
from ragprune.weight_pruning.recovery import RecoveryConfig, distill, kept_layer_map
from ragprune.weight_pruning.sampling import kmeans_sample
from ragprune.weight_pruning.statistics import CalibrationStatistics, collect_statistics
from ragprune.weight_pruning.structured import (
    STRUCTURES,
    check_kept_layers,
    kept_count,
    prune_layers,
    prune_structures,
)
from ragprune.weight_pruning.unstructured import (
    Masks,
    apply_masks,
    nm_masks,
    parse_nm,
    unstructured_masks,
    weight_sparsity,
)
from ragprune.weight_pruning.vocabulary import trim_to_texts

REPORT_NAME = "compression.json"
"""The compression report written beside the weights by :meth:`CompressionResult.save`."""

STRUCTURE_CHOICES = ("unstructured", "2:4", "heads", "ffn", "layers", "heads+ffn")


@dataclass
class Calibration:
    """Calibration sets by name (``"domain"``, ``"general"``) and their batches for the joint loss."""

    sets: dict[str, CalibrationSet]
    batches: dict[str, list[Batch]] = field(default_factory=dict)

    def all_batches(self) -> list[Batch]:
        """Every batch of every set (recovery trains on all of them)."""
        return [batch for name in sorted(self.batches) for batch in self.batches[name]]

    def summary(self) -> dict[str, Any]:
        return {name: {"groups": len(s), "sources": s.sources()} for name, s in self.sets.items()}


def build_calibration(
    model: RerankPruneModel,
    tokenizer: PreTrainedTokenizerBase,
    domain: Sequence[str | Path] = (),
    general: Sequence[str | Path] = (),
    size: int = 128,
    candidates: int = DEFAULT_CANDIDATES,
    seed: int = 0,
) -> Calibration:
    """Read the ``domain`` and ``general`` sources (``calibration.load_source``: recipe or source names,
    files), k-means-sample ``size`` groups of each with the model's own query embeddings (GAPrune's
    sampling), and tokenize them into one-group batches. A side without sources is left out."""
    sets = {}
    for name, sources in (("domain", domain), ("general", general)):
        if not sources:
            continue
        pool = [group for source in sources for group in load_source(source, candidates, seed)]
        sets[name] = kmeans_sample(pool, size, model, tokenizer, name, seed)
    calibration = Calibration(sets)
    calibration.batches = {
        name: group_batches(s.groups, tokenizer, model.config.max_length) for name, s in sets.items()
    }
    return calibration


def measure(
    model: RerankPruneModel, calibration: Calibration, device: torch.device | str | None = None
) -> CalibrationStatistics:
    """The per-weight statistics every data-driven importance reads (one forward + backward per group);
    the model is used in place and left in eval mode."""
    return collect_statistics(model, calibration.batches, JointLoss(), device)


@dataclass
class CompressionResult:
    """The compressed model, its tokenizer (if given), the masks of a mask-based structure, and a report
    (method, structure, sparsity, parameters before / after, timings, recovery)."""

    model: RerankPruneModel
    tokenizer: PreTrainedTokenizerBase | None
    report: dict[str, Any]
    masks: Masks | None = None

    def save(self, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write the model folder (``save_pretrained``, with the tokenizer) and ``compression.json``."""
        folder = Path(folder)
        self.model.save_pretrained(folder, self.tokenizer, dtype=dtype)
        (folder / REPORT_NAME).write_text(json.dumps(self.report, indent=2, sort_keys=True) + "\n")
        return folder

    def trim_vocabulary(self, texts: Iterable[str], size: int) -> CompressionResult:
        """Also trim the word embeddings to ``size`` tokens counted in ``texts`` (training text only;
        ``weight_pruning.vocabulary``), in place: model, tokenizer and report (``vocabulary``,
        ``parameters_after``, ``fp16_megabytes``). ``ValueError`` without a tokenizer or for a bad size."""
        if self.tokenizer is None:
            raise ValueError("vocabulary trimming needs the tokenizer: pass it to compress()")
        self.model, self.tokenizer, vocabulary = trim_to_texts(self.model, self.tokenizer, texts, size)
        self.report["vocabulary"] = asdict(vocabulary)
        self.report["parameters_after"] = parameter_counts(self.model)
        self.report["fp16_megabytes"] = fp16_megabytes(self.model)
        self.model.config.provenance.note += f" | vocabulary trimmed to {vocabulary.after} tokens"
        return self


def compress(
    model: RerankPruneModel,
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    method: str | None,
    structure: str,
    sparsity: float,
    calibration: Calibration | None = None,
    statistics: CalibrationStatistics | None = None,
    recover_steps: int = 0,
    recovery: RecoveryConfig | None = None,
    recovery_groups: Sequence[CalibrationGroup] | None = None,
    dai: DAIConfig | None = None,
    keep_layers: Sequence[int] | None = None,
    device: torch.device | str | None = None,
) -> CompressionResult:
    """Prune a copy of ``model`` (``model`` itself is not changed) and optionally recover it by distillation.

    Args:
        method: ``magnitude``, ``wanda``, ``fisher`` (general data) or ``gaprune`` (domain + general data);
            ``None`` only with ``keep_layers``.
        structure: ``unstructured``, ``N:M`` (``2:4``), ``heads``, ``ffn``, ``layers`` or ``heads+ffn``.
        sparsity: share removed, in [0, 1): of each row's weights (unstructured), of each layer's heads /
            FFN neurons, of the layers; ``N:M`` requires ``1 - N/M``.
        calibration: from :func:`build_calibration`; needed by every method but ``magnitude`` (unless
            ``statistics`` are given) and by recovery.
        statistics: precomputed :func:`measure` output for this ``model`` (reused across calls).
        recover_steps: distillation steps from the dense model (0: one-shot, unless ``recovery.steps``);
            ``recovery`` sets the rest.
        recovery_groups: groups recovery trains on, ``recovery.groups_per_step`` per step (labels not
            needed, e.g. ``load_source("msmarco-dev")``; needs ``tokenizer``); default: the calibration
            batches. Calibration picks a few hundred groups for the statistics; a recovery that should
            bring the pruned model back to the dense one's quality needs many more (Minitron's distillation
            runs over a training set, not the calibration sample).
        dai: GAPrune's DAI parameters (``importance.DAIConfig``).
        keep_layers: with ``structure="layers"``, the layers to keep (0-based), chosen by the caller instead
            of by a ``method`` (pass ``method=None``), e.g. ``[0, 1, 2, 5]`` to keep the last layer; as many
            as ``sparsity`` keeps.
        device: where statistics and recovery run (default: the model's device).

    Raises ``ValueError`` for an unknown method or structure, a sparsity out of range, missing data, or
    neither or both of ``method`` and ``keep_layers``.
    """
    if (method is None) == (keep_layers is None):
        raise ValueError("pass an importance method=, or keep_layers= with method=None (not both)")
    check_options(method, structure, sparsity)
    if keep_layers is not None:
        check_keep_layers(keep_layers, structure, sparsity, model.backbone_config.num_hidden_layers)
    needs_data = method not in (None, "magnitude") and statistics is None
    steps = recover_steps or (recovery.steps if recovery is not None else 0)
    has_calibration = calibration is not None and bool(calibration.batches)
    if needs_data and not has_calibration:
        raise ValueError(f"method {method!r} needs calibration data: pass calibration=build_calibration(...)")
    if steps > 0 and not (has_calibration or recovery_groups):
        raise ValueError(
            "recovery needs data: pass recovery_groups=... or calibration=build_calibration(...)"
        )
    if recovery_groups and tokenizer is None:
        raise ValueError("recovery_groups are tokenized with the model's tokenizer: pass tokenizer=")
    dai = dai or DAIConfig()
    started = time.perf_counter()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if needs_data:
        assert calibration is not None
        statistics = measure(model, calibration, device)
    before = parameter_counts(model)
    pruned = copy.deepcopy(model).eval()
    scoring_start = time.perf_counter()
    masks: Masks | None = None
    kept: dict[str, Any] = {}
    nm = parse_nm(structure)
    if keep_layers is not None:
        prune_layers(pruned, sorted(keep_layers))
        kept["layers"] = sorted(keep_layers)
    elif method is None:
        raise AssertionError("unreachable: checked above")
    elif structure == "unstructured" or nm:
        scores = weight_scores(pruned, method, statistics, dai)
        masks = unstructured_masks(scores, sparsity) if nm is None else nm_masks(scores, *nm)
        apply_masks(pruned, masks)
    else:
        values = structure_scores(pruned, method, statistics, dai)
        for part in structure.split("+"):
            kept[part] = prune_structures(pruned, values, STRUCTURES[part], sparsity)
    pruning_seconds = time.perf_counter() - scoring_start
    report: dict[str, Any] = {
        "method": method,
        "structure": structure,
        "sparsity": sparsity,
        "dai": asdict(dai) if method == "gaprune" else None,
        "keep_layers": None if keep_layers is None else sorted(keep_layers),
        "parameters_before": before,
        "kept": {k: v for k, v in kept.items()},
        "calibration": calibration.summary() if calibration is not None else None,
        "statistics_seconds": statistics.seconds if statistics is not None else 0.0,
        "statistics_loss": statistics.loss if statistics is not None else None,
        "pruning_seconds": pruning_seconds,
    }
    if steps > 0:
        config = RecoveryConfig(**{**asdict(recovery or RecoveryConfig()), "steps": steps})
        if recovery_groups:
            assert tokenizer is not None
            batches = group_batches(
                recovery_groups, tokenizer, model.config.max_length, groups_per_batch=config.groups_per_step
            )
            report["recovery_data"] = {
                "groups": len(recovery_groups),
                "batches": len(batches),
                "teacher_scored_groups": sum(
                    all(p.teacher is not None for p in g.passages) for g in recovery_groups
                ),
            }
        else:
            assert calibration is not None
            batches = calibration.all_batches()
        teacher = copy.deepcopy(model).eval()
        targets = None
        if "layers" in kept and config.layer_map == "kept":
            targets = kept_layer_map(kept["layers"], model.backbone_config.num_hidden_layers)
        report["recovery"] = distill(pruned, teacher, batches, config, masks, device, targets)
        del teacher
    pruned.eval()
    report["parameters_after"] = parameter_counts(pruned)
    report["weight_sparsity"] = weight_sparsity(pruned)
    report["fp16_megabytes"] = fp16_megabytes(pruned)
    report["encoder_structure"] = (
        None if pruned.config.encoder_structure is None else asdict(pruned.config.encoder_structure)
    )
    report["num_hidden_layers"] = pruned.backbone_config.num_hidden_layers
    report["seconds"] = time.perf_counter() - started
    note = f"compressed by ragprune.weight_pruning: {method}, {structure}, sparsity {sparsity}"
    if "recovery" in report:
        note += f", {report['recovery']['steps']} recovery steps"
    previous = pruned.config.provenance.note
    pruned.config.provenance = copy.deepcopy(pruned.config.provenance)
    pruned.config.provenance.note = f"{previous} | {note}" if previous else note
    return CompressionResult(pruned, tokenizer, report, masks)


def check_keep_layers(keep: Sequence[int], structure: str, sparsity: float, layers: int) -> None:
    """``ValueError`` naming the fix unless ``keep`` lists distinct layers of ``layers`` for ``structure``
    ``layers``, as many as ``sparsity`` keeps."""
    if structure != "layers":
        raise ValueError(f"kept layers apply to structure layers (--structure layers), not {structure!r}")
    check_kept_layers(keep, layers)
    wanted = kept_count(layers, sparsity)
    if len(keep) != wanted:
        raise ValueError(
            f"sparsity {sparsity} keeps {wanted} of {layers} layers, but {len(keep)} are listed: use "
            f"sparsity {1 - len(keep) / layers:.4f} (--sparsity)"
        )


def check_options(method: str | None, structure: str, sparsity: float) -> None:
    """``ValueError`` naming the fix for an unknown method or structure or a sparsity it cannot take
    (``method=None``: no method, the caller chooses what to keep)."""
    if method is not None and method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    nm = parse_nm(structure)
    parts = structure.split("+")
    known = all(part in STRUCTURES for part in parts) and len(set(parts)) == len(parts)
    if structure != "unstructured" and nm is None and not known:
        raise ValueError(f"unknown structure {structure!r}; use one of {STRUCTURE_CHOICES} or N:M")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity={sparsity} must lie in [0, 1)")
    if nm is not None and abs(sparsity - (1 - nm[0] / nm[1])) > 1e-9:
        raise ValueError(
            f"structure {structure} keeps {nm[0]} of every {nm[1]} weights: use sparsity {1 - nm[0] / nm[1]}"
        )
