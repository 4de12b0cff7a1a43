"""TrainConfig: one source of defaults for train.py's command line, saved and loaded whole."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ragprune.training.config import CONFIG_FILE, ROUND_THRESHOLDS, TrainConfig


def _config(**changes) -> TrainConfig:
    return TrainConfig(backbone=Path("backbone"), out=Path("runs/x"), **changes)


def test_save_then_load_gives_an_equal_config(tmp_path):
    config = _config(tau=0.4, calibrate_sentences=False, round_thresholds=(0.1, 0.3), device="cpu")
    path = config.save(tmp_path)
    assert path == tmp_path / CONFIG_FILE
    loaded = TrainConfig.load(tmp_path)
    assert loaded == config
    assert TrainConfig.load(path) == config
    assert isinstance(loaded.data, Path) and isinstance(loaded.round_thresholds, tuple)
    assert loaded.init is None and loaded.tau == 0.4


def test_to_dict_is_asdict_as_json_values():
    config = _config()
    as_dict = config.to_dict()
    assert set(as_dict) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert json.loads(json.dumps(as_dict)) == as_dict  # plain JSON values
    assert as_dict["backbone"] == "backbone" and as_dict["round_thresholds"] == list(ROUND_THRESHOLDS)
    assert TrainConfig.from_json(config.to_json()) == config


def test_command_line_defaults_are_the_dataclass_defaults():
    parsed = TrainConfig.from_args(["--backbone", "backbone", "--out", "runs/x"])
    assert parsed == _config()
    for field in dataclasses.fields(TrainConfig):
        if field.default is not dataclasses.MISSING and field.name != "backbone":
            assert getattr(parsed, field.name) == field.default, field.name


def test_command_line_sets_every_kind_of_field():
    parsed = TrainConfig.from_args(
        ["--init", "model", "--out", "o", "--group-size", "8", "--tau", "0.5", "--no-calibrate-sentences"]
        + ["--round-thresholds", "0.1", "0.2", "--device", "cpu"]
    )
    assert parsed.init == Path("model") and parsed.backbone is None and parsed.start == Path("model")
    assert parsed.group_size == 8 and parsed.tau == 0.5 and parsed.calibrate_sentences is False
    assert parsed.round_thresholds == (0.1, 0.2) and parsed.device == "cpu"


def test_train_py_options_keep_their_names():
    """training/README.md documents these options; they must keep their names."""
    parser = TrainConfig.argument_parser()
    options = {option for action in parser._actions for option in action.option_strings}
    documented = {"--data", "--backbone", "--init", "--out", "--epochs", "--group-size", "--queries-per-step"}
    documented |= {"--lr", "--head-lr", "--warmup", "--max-length", "--tau", "--gold-mix", "--token-weight"}
    documented |= {"--irrelevant-weight", "--silver-weight", "--pair-weight", "--pair-margin", "--seed"}
    documented |= {"--spliced-per-step", "--silver-margin", "--silver-min-cos", "--target-recall"}
    documented |= {"--calibrate-sentences", "--no-calibrate-sentences", "--max-steps", "--valid-queries"}
    assert documented <= options


@pytest.mark.parametrize(
    "argv", [["--out", "o"], ["--backbone", "b", "--init", "i", "--out", "o"], ["--backbone", "b"]]
)
def test_command_line_needs_one_start_and_an_output(argv, capsys):
    with pytest.raises(SystemExit):
        TrainConfig.from_args(argv)


def test_a_config_starts_from_exactly_one_folder():
    with pytest.raises(ValueError, match="exactly one of backbone"):
        TrainConfig(out=Path("o"))
    with pytest.raises(ValueError, match="exactly one of backbone"):
        TrainConfig(out=Path("o"), backbone=Path("b"), init=Path("i"))


def test_gold_source_weights_parse_and_name_the_fix():
    config = TrainConfig(out=Path("o"), init=Path("i"), gold_source_weights=("scifact=3", "nq=0.5"))
    assert config.gold_weights == {"scifact": 3.0, "nq": 0.5}
    assert TrainConfig(out=Path("o"), init=Path("i")).gold_weights == {}
    for bad in ("scifact", "=3", "scifact=-1", "scifact=x", "scifact=nan", "scifact=inf", "scifact=1e400"):
        with pytest.raises(ValueError, match="must be SOURCE=W with a finite W >= 0, e.g. scifact=3"):
            TrainConfig(out=Path("o"), init=Path("i"), gold_source_weights=(bad,))
    with pytest.raises(ValueError, match="names 'nq' twice"):
        TrainConfig(out=Path("o"), init=Path("i"), gold_source_weights=("nq=1", "nq=2"))
    parsed = TrainConfig.from_args(
        ["--init", "i", "--out", "o", "--gold-source-weights", "scifact=3", "nq=2"]
    )
    assert parsed.gold_weights == {"scifact": 3.0, "nq": 2.0}


def test_unknown_fields_are_refused_unless_told_to_ignore_them():
    data = _config().to_dict() | {"retired_option": 1}
    with pytest.raises(ValueError, match="retired_option"):
        TrainConfig.from_dict(data)
    assert TrainConfig.from_dict(data, strict=False) == _config()


def test_the_settings_of_an_older_run_load_with_defaults_for_new_fields():
    """Folders saved before TrainConfig hold ``vars(args)`` with paths as strings."""
    old = {"data": ".carry/train", "backbone": None, "init": "ragprune/models/default", "out": "/tmp/sweep/g"}
    old |= {"epochs": 1, "tau": 1.0, "lr": 1e-05, "calibrate_sentences": True}
    config = TrainConfig.from_dict(old)
    assert config.init == Path("ragprune/models/default") and config.lr == 1e-05
    assert config.teacher_top == TrainConfig.default("teacher_top") == 4


def test_default_names_a_field_default():
    assert TrainConfig.default("target_recall") == 0.92
    with pytest.raises(KeyError):
        TrainConfig.default("out")


def test_load_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=CONFIG_FILE):
        TrainConfig.load(tmp_path)


def test_query_caps_follow_the_window():
    config = _config(max_length=256)
    assert (config.query_tokens, config.hop_query_tokens) == (64, 128)
    assert _config(max_length=64).query_tokens == 16
