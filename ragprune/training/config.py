"""Every hyper-parameter of a training run in one typed record (:class:`TrainConfig`), saved whole.

One source of defaults: ``training/train.py``'s command line is generated from the fields below
(``--group-size`` sets ``group_size``, a ``bool`` field gives ``--x/--no-x``, a tuple ``--x V [V ...]``),
and the whole record travels with the model: ``train_config.json`` beside the saved weights and
``provenance.train_config`` inside its ``ragprune_config.json`` (nanoGPT's ``train.py`` keeps its
configuration with the checkpoint the same way). Nothing in the training loop is a literal that is not
one of these fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_FILE = "train_config.json"
"""File name of a saved :class:`TrainConfig` (in the model folder a run writes)."""

ROUND_THRESHOLDS: tuple[float, ...] = (0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.4, 0.5)
"""Default-threshold candidates once sentence probabilities are calibrated: round values (Provence's
convention: about 0.1 conservative, 0.5 aggressive), close together below 0.2, where calibrated models
put most of the other sentences of answer-bearing passages: with only 0.05 below 0.1, a model whose
held-out recall at 0.1 missed the target by a hair fell to 0.05 and pruned almost nothing (two of
three seeds in ``training/README.md`` session 16; dev WikiQA 0.048 dropped against 0.476 at 0.1)."""

THRESHOLD_GRID: tuple[float, ...] = tuple(float(t) for t in np.round(np.geomspace(0.0005, 0.9, 60), 4))
"""Default-threshold candidates without sentence calibration (60 geometric steps from 0.0005 to 0.9):
uncalibrated keep-probabilities of a head trained on sparse sentence labels sit far below 0.5, so the
grid is dense near 0."""


def setting(default: Any, help: str, **metadata: Any) -> Any:
    """A :class:`TrainConfig` field: its default and the one line that documents it (also the ``--help``
    text). ``metadata`` may say ``group="start"`` (one of the group's options is required) or
    ``required=True`` (no default)."""
    if metadata.get("required"):
        return field(metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


@dataclass(kw_only=True)
class TrainConfig:
    """Settings of one ``training/train.py`` run; field docs are the ``setting(default, help)`` lines.

    Exactly one of ``backbone`` and ``init`` is set (``ValueError`` otherwise). :meth:`to_dict` gives JSON
    values (paths as strings, tuples as lists); :meth:`from_dict` reverses it; :meth:`save` / :meth:`load`
    write and read ``train_config.json``.
    """

    # ---- data, start, output -------------------------------------------------------------------
    data: Path = setting(Path(".cache/train"), "folder written by build_data.py (and build_spliced.py)")
    backbone: Path | None = setting(
        None, "Hugging Face encoder folder to start from (new heads)", group="start"
    )
    init: Path | None = setting(None, "ragprune model folder to continue from (warm start)", group="start")
    out: Path = setting(None, "output folder (model/, train.log, summary.json, checkpoint.pt)", required=True)
    device: str | None = setting(None, "default: cuda if available, else cpu")
    seed: int = setting(13, "seed of python, numpy and torch, of the group order and of the sampling")

    # ---- steps and optimiser -------------------------------------------------------------------
    epochs: int = setting(3, "passes over the training groups")
    max_steps: int = setting(0, "stop after this many steps (0: all epochs)")
    queries_per_step: int = setting(16, "queries (candidate groups) per step")
    group_size: int = setting(16, "candidates per query per step")
    lr: float = setting(7e-5, "AdamW learning rate of the encoder")
    head_lr: float = setting(1e-3, "AdamW learning rate of the heads")
    weight_decay: float = setting(0.01, "AdamW weight decay (encoder and heads)")
    warmup: float = setting(0.05, "share of steps with linear warm-up (then linear decay to 0)")
    grad_clip: float = setting(1.0, "gradient norm clip per step")
    bf16: bool = setting(True, "bfloat16 autocast on CUDA (the CPU always runs fp32)")
    log_every: int = setting(50, "log the losses every this many steps")

    # ---- inputs ----------------------------------------------------------------------------------
    max_length: int = setting(256, "encoder window in tokens (query + passage + special tokens)")
    query_share: float = setting(0.25, "share of the window a training query may fill (cut beyond)")
    hop_query_share: float = setting(
        0.5, "share of the window a second-hop spliced query (query + evidence) may fill"
    )

    # ---- rank head: listwise distillation ----------------------------------------------------------
    tau: float = setting(1.0, "teacher temperature (teacher scores are z-scored per query)")
    gold_mix: float = setting(0.3, "weight of the gold passage in the rank target")
    teacher_top: int = setting(4, "the teacher's top candidates always in a query's group, beside gold")

    list_weight: float = setting(
        0.0,
        "weight of a list loss on a listwise head trained with the encoder (issue 11): the head reads each "
        "group's [CLS] vectors and rank logits and is distilled like the rank head, so the encoder learns "
        "vectors the list module can use (0: no head; a frozen model's head is train_list_head.py's)",
    )

    # ---- token head: sentence labels and loss --------------------------------------------------------
    token_weight: float = setting(1.0, "weight of the token loss")
    irrelevant_weight: float = setting(
        0.25, "token-loss weight of a passage whose sentences are all 'drop' because it is not relevant"
    )
    silver_weight: float = setting(0.5, "token-loss weight of a silver passage")
    gold_source_weights: tuple[str, ...] = setting(
        (),
        "token-loss weight of the gold passages of a record source, SOURCE=W; build_data.py's sources "
        "with gold: nq, hotpotqa, scifact, wikiqa, trecqa (e.g. scifact=3: its abstracts' non-gold "
        "sentences sit above the threshold, training/README.md session 12); other sources and spliced "
        "passages 1",
        metavar="SOURCE=W",
    )
    pair_weight: float = setting(1.0, "weight of the within-passage pair term")
    pair_margin: float = setting(2.0, "logit margin of the pair term")
    spliced_per_step: int = setting(32, "spliced passages per step (0: none, or no file)")
    silver_margin: float = setting(0.1, "silver: keep sentences within this cosine of the best")
    silver_min_cos: float = setting(
        0.5, "silver: MPNet cosine the teacher's top passage needs to count as relevant"
    )

    # ---- validation, calibration, default threshold ------------------------------------------------
    valid_queries: int = setting(0, "limit DL21 validation queries (0: all)")
    eval_batch_size: int = setting(256, "rows per batch of the validation and threshold passes")
    heldout_batch_size: int = setting(128, "examples per batch of the held-out token pass")
    relevant_grade: int = setting(2, "DL21 grade from which a passage counts relevant for Platt scaling")
    calibrate_sentences: bool = setting(
        True, "fit sentence-probability calibration on held-out training questions into the token head"
    )
    target_recall: float = setting(0.92, "pruning threshold: held-out gold recall to keep")
    round_thresholds: tuple[float, ...] = setting(
        ROUND_THRESHOLDS, "default-threshold candidates after sentence calibration"
    )
    threshold_grid: tuple[float, ...] = setting(
        THRESHOLD_GRID, "default-threshold candidates without sentence calibration"
    )

    def __post_init__(self) -> None:
        if (self.backbone is None) == (self.init is None):
            raise ValueError(
                "a training run starts from exactly one of backbone (a Hugging Face encoder folder, new "
                f"heads) and init (a ragprune model folder); got backbone={self.backbone}, init={self.init}"
            )
        for name, hint in _hints().items():  # JSON and the command line give lists and strings
            value = getattr(self, name)
            if value is not None and _base(hint) is Path and not isinstance(value, Path):
                setattr(self, name, Path(value))
            elif value is not None and _base(hint) is tuple and not isinstance(value, tuple):
                setattr(self, name, tuple(value))
        _source_weights(self.gold_source_weights)  # a bad SOURCE=W fails here, not after data loading
        if not 0 <= self.list_weight < math.inf:
            raise ValueError(f"list_weight must be a finite number >= 0, got {self.list_weight}")

    @property
    def gold_weights(self) -> dict[str, float]:
        """``gold_source_weights`` as source -> weight."""
        return _source_weights(self.gold_source_weights)

    @property
    def start(self) -> Path:
        """The folder the run starts from (``init`` or ``backbone``)."""
        return self.init if self.init is not None else self.backbone  # type: ignore[return-value]

    @property
    def query_tokens(self) -> int:
        """Token cap of a training query: ``int(max_length * query_share)``."""
        return int(self.max_length * self.query_share)

    @property
    def hop_query_tokens(self) -> int:
        """Token cap of a second-hop spliced query: ``int(max_length * hop_query_share)``."""
        return int(self.max_length * self.hop_query_share)

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of field ``name`` (for scripts that share one setting, e.g. ``target_recall``);
        ``KeyError`` for an unknown or required field."""
        value = {f.name: f.default for f in dataclasses.fields(cls)}[name]
        if value is dataclasses.MISSING:
            raise KeyError(f"TrainConfig.{name} has no default")
        return value

    # ---- JSON ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict`` as JSON values: paths as strings, tuples as lists, the rest as is."""
        return {name: _json_value(value) for name, value in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON text (one field per line, in declaration order)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, strict: bool = True) -> TrainConfig:
        """Build from :meth:`to_dict`'s output. A missing field takes its default; an unknown key raises
        ``ValueError`` unless ``strict=False`` (then it is ignored: configs of older runs)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown and strict:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(names)}")
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str, *, strict: bool = True) -> TrainConfig:
        """Parse :meth:`to_json`'s output (see :meth:`from_dict`)."""
        return cls.from_dict(json.loads(text), strict=strict)

    def save(self, folder: Path) -> Path:
        """Write ``folder/train_config.json`` (the folder must exist); returns the file's path."""
        path = Path(folder) / CONFIG_FILE
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        """Read a ``train_config.json`` file, or the one inside folder ``path``.

        Raises ``FileNotFoundError`` naming the missing file.
        """
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: no training configuration was saved there")
        return cls.from_json(path.read_text(encoding="utf-8"))

    # ---- command line --------------------------------------------------------------------------

    @classmethod
    def argument_parser(cls, description: str | None = None) -> argparse.ArgumentParser:
        """An ``ArgumentParser`` with one option per field (``--field-name``), defaults from the fields."""
        parser = argparse.ArgumentParser(description=description)
        groups: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            hint = _hints()[f.name]
            base = _base(hint)
            kwargs: dict[str, Any] = {"help": f.metadata["help"], "dest": f.name}
            if base is not tuple and not f.metadata.get("required"):
                kwargs["help"] += " (default: %(default)s)"
            if base is bool:
                kwargs |= {"action": argparse.BooleanOptionalAction, "default": f.default}
            elif base is tuple:  # tuple[X, ...]: X values
                element = typing.get_args(hint)[0]
                kwargs |= {"type": element, "nargs": "+", "default": f.default}
                kwargs["metavar"] = f.metadata.get("metavar", "T")
            else:
                kwargs |= {"type": base}
                if f.metadata.get("required"):
                    kwargs["required"] = True
                else:
                    kwargs["default"] = f.default
            target: Any = parser
            if "group" in f.metadata:
                name = f.metadata["group"]
                if name not in groups:
                    groups[name] = parser.add_mutually_exclusive_group(required=True)
                target = groups[name]
            target.add_argument("--" + f.name.replace("_", "-"), **kwargs)
        return parser

    @classmethod
    def from_args(cls, argv: list[str] | None = None, description: str | None = None) -> TrainConfig:
        """Parse a command line (``sys.argv[1:]`` when ``argv`` is None) into a config; argparse exits
        with its usage message on a bad option."""
        return cls(**vars(cls.argument_parser(description).parse_args(argv)))


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _base(hint: Any) -> type:
    """The type behind ``X | None`` and ``tuple[X, ...]``: ``Path``, ``int``, ``tuple``, ..."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return typing.get_origin(hint) or hint


def _json_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _source_weights(entries: tuple[str, ...]) -> dict[str, float]:
    """``("scifact=3", ...)`` as ``{"scifact": 3.0}``; ``ValueError`` naming the fix for a bad entry."""
    weights = {}
    for entry in entries:
        source, _, value = entry.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not source or not 0 <= weight < math.inf:
            raise ValueError(
                f"gold_source_weights entry {entry!r} must be SOURCE=W with a finite W >= 0, e.g. scifact=3"
            )
        if source in weights:
            raise ValueError(f"gold_source_weights names {source!r} twice: give each source one weight")
        weights[source] = weight
    return weights
