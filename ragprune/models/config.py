"""The ragprune part of a model folder's configuration (``ragprune_config.json``): the single source of truth
for inference (window, threshold, sentence reduction, heads, calibration, encoder structure), plus where the
weights came from (``Provenance``).

The backbone keeps its own Hugging Face ``config.json`` beside it, so any encoder that
``transformers.AutoModel`` can build works as a backbone. Folders written before this layout (heads as a
list, calibration inside a free-form ``training`` dict) still load.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONFIG_NAME = "ragprune_config.json"
SENTENCE_REDUCTIONS = ("mean", "max", "vote")


@dataclass(frozen=True)
class HeadSpec:
    """One head of the model: ``type`` is a built-in head name (``"rank"``, ``"token"``) or an import path
    ``"package.module:ClassName"``; ``options`` are its constructor's keyword arguments
    (see ``ragprune.models.heads``)."""

    type: str
    options: dict[str, Any] = field(default_factory=dict)


def default_heads() -> dict[str, HeadSpec]:
    """The pointwise model: a rank head on ``[CLS]`` and a token head on the passage tokens."""
    return {"rank": HeadSpec("rank"), "token": HeadSpec("token")}


@dataclass(frozen=True)
class Calibration:
    """Platt scaling of the rank logit: probability ``sigmoid(scale * logit + bias)`` (identity by default).

    Fitted on held-out training questions (``ragprune.training``); Platt, "Probabilistic outputs for support
    vector machines", 1999.
    """

    scale: float = 1.0
    bias: float = 0.0

    def probability(self, logit: float) -> float:
        """The calibrated probability of one logit, in [0, 1]; ``-inf`` gives 0."""
        z = self.scale * logit + self.bias
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass(frozen=True)
class LayerShape:
    """The width of one encoder layer: attention heads kept and FFN (intermediate) neurons kept."""

    attention_heads: int
    intermediate_size: int


@dataclass(frozen=True)
class EncoderStructure:
    """Per-layer widths of an encoder whose layers differ (after structured weight pruning); applied to the
    freshly built backbone before its weights load (``ragprune.models.structure``). ``None`` in the config
    means every layer has the backbone config's widths."""

    layers: tuple[LayerShape, ...]

    def __post_init__(self) -> None:
        for i, layer in enumerate(self.layers):
            if layer.attention_heads < 1 or layer.intermediate_size < 1:
                raise ValueError(
                    f"encoder_structure layer {i} keeps {layer.attention_heads} heads and "
                    f"{layer.intermediate_size} FFN neurons; a layer needs at least one of each "
                    "(remove the layer from the backbone instead)"
                )


@dataclass
class Provenance:
    """Where the weights came from; nothing here changes inference.

    ``train_config`` is the training run's whole configuration (``ragprune.training.TrainConfig`` as JSON
    values), ``history`` its validation records, ``metrics`` the numbers the run was chosen by,
    ``threshold_selection`` the held-out pruning measurements behind the default threshold and
    ``sentence_calibration`` the ``(scale, bias)`` already folded into the token head.
    """

    note: str = ""
    train_config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    threshold_selection: dict[str, Any] = field(default_factory=dict)
    sentence_calibration: tuple[float, float] | None = None


@dataclass
class RerankPruneConfig:
    """Inference settings and heads of a rerank + prune model.

    ``max_length`` is the encoder window in tokens; ``threshold`` the default sentence keep threshold (a
    calibrated probability); ``sentence_reduce`` how token probabilities become a sentence score
    (``mean``, ``max``, ``vote``); ``heads`` name → :class:`HeadSpec` (``rank`` and ``token`` are what the
    pipeline reads; other heads' outputs are passed through to the results); ``calibration`` turns the rank
    logit into a probability; ``encoder_structure`` records per-layer widths after structured pruning.
    """

    max_length: int = 256
    threshold: float = 0.1
    sentence_reduce: str = "mean"
    heads: dict[str, HeadSpec] = field(default_factory=default_heads)
    calibration: Calibration = field(default_factory=Calibration)
    encoder_structure: EncoderStructure | None = None
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        if self.sentence_reduce not in SENTENCE_REDUCTIONS:
            raise ValueError(
                f"sentence_reduce={self.sentence_reduce!r} is not supported; use one of {SENTENCE_REDUCTIONS}"
            )
        if self.max_length < 16:
            raise ValueError(f"max_length={self.max_length} is too small; use at least 16 tokens")
        for required in ("rank", "token"):
            if required not in self.heads:
                raise ValueError(
                    f"the model config has no {required!r} head (heads: {sorted(self.heads)}); "
                    "a rerank + prune model needs both 'rank' and 'token'"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RerankPruneConfig:
        """Build from :meth:`to_dict`'s output, or from a folder written before this layout."""
        data = dict(data)
        if "training" in data or isinstance(data.get("heads"), list):
            data = _from_legacy(data)
        heads = {name: HeadSpec(**spec) for name, spec in data.pop("heads", {}).items()} or default_heads()
        structure = data.pop("encoder_structure", None)
        provenance = dict(data.pop("provenance", {}))
        if provenance.get("sentence_calibration") is not None:
            provenance["sentence_calibration"] = tuple(provenance["sentence_calibration"])
        return cls(
            heads=heads,
            calibration=Calibration(**data.pop("calibration", {})),
            encoder_structure=None
            if structure is None
            else EncoderStructure(tuple(LayerShape(**layer) for layer in structure["layers"])),
            provenance=Provenance(**provenance),
            **data,
        )

    def save(self, folder: Path) -> None:
        (folder / CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: Path) -> RerankPruneConfig:
        path = folder / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: {folder} is not a ragprune model folder "
                "(save one with RerankPruneModel.save_pretrained, or load a Provence checkpoint "
                "with load_provence)"
            )
        return cls.from_dict(json.loads(path.read_text()))


def _from_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """The layout of folders saved before heads, calibration and provenance had their own records."""
    training = dict(data.pop("training", {}))
    activation = data.pop("rank_pooler_activation", None)
    names = data.pop("heads", ["rank", "token"])
    options = {"rank": {"pooler_activation": activation} if activation else {}}
    data["heads"] = {name: {"type": name, "options": options.get(name, {})} for name in names}
    data["calibration"] = {
        "scale": float(training.pop("calibration_scale", 1.0)),
        "bias": float(training.pop("calibration_bias", 0.0)),
    }
    history = training.pop("history", None) or training.pop("validation", [])
    metrics = {k: float(v) for k, v in training.items() if k.startswith("best_")}
    data["provenance"] = {
        "note": training.pop("note", ""),
        "train_config": {k: _typed(v) for k, v in training.pop("args", {}).items()},
        "history": history,
        "metrics": {k.removeprefix("best_"): v for k, v in metrics.items()},
        "threshold_selection": training.pop("threshold_selection", {}),
        "sentence_calibration": training.pop("sentence_calibration", None),
    }
    return data


def _typed(value: Any) -> Any:
    """A training argument that older folders saved as a string, back to its JSON value."""
    if not isinstance(value, str):
        return value
    if value in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[value]
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
