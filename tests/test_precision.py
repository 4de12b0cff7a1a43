"""``RerankPruner(precision=...)``: dynamic int8 on the CPU (``ragprune.pipeline.precision``) and the
``--precision`` option of ``ragprune rerank`` / ``prune`` (ONNX precisions: tests/test_onnx_backend.py)."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from sample_texts import QUERY, TEXTS, assert_scores_close, sample_scores

from ragprune.cli import main
from ragprune.models import load_model
from ragprune.pipeline import RerankPruner
from ragprune.pipeline.precision import PRECISIONS, checked_precision, is_quantized, quantized_int8

# int8 weights carry one scale per tensor, so each weight is off by at most half a step: 1/254 of the
# tensor's largest |weight| (~0.4 %); activations are rounded the same way per batch. Through the tiny
# model's two layers that moves logits and sentence probabilities by ~1e-4 (measured); 1e-2 leaves ~100x
# headroom while still catching a wrong dtype, a skipped dequantization or an altered head (all O(0.1-1)).
# The shipped model's change on real data is measured in eval/results/bench_cpu.md.
TOLERANCE = 1e-2
TORCH_PRECISIONS = ("fp32", "int8")
ONNX = ("onnx-fp32", "onnx-int8")
HAS_ONNX = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_model(tiny_model_dir)


def test_int8_scores_are_close_to_fp32(tiny) -> None:
    model, tokenizer = tiny
    fp32 = RerankPruner(model, tokenizer, device="cpu", precision="fp32")
    int8 = RerankPruner(model, tokenizer, device="cpu", precision="int8")
    assert int8.precision == "int8" and is_quantized(int8.model) and not is_quantized(fp32.model)
    assert_scores_close(sample_scores(fp32), sample_scores(int8), TOLERANCE)


def test_int8_quantizes_only_the_encoder_linears(tiny) -> None:
    model, _ = tiny
    quantized = quantized_int8(model)
    assert is_quantized(quantized.encoder) and not is_quantized(quantized.heads)
    assert not any(type(m) is torch.nn.Linear for m in quantized.encoder.modules())


def test_the_callers_model_is_unchanged(tiny) -> None:
    model, tokenizer = tiny
    before = copy.deepcopy(model.state_dict())
    types = [type(m) for m in model.modules()]
    RerankPruner(model, tokenizer, device="cpu", precision="int8").process(QUERY, TEXTS)
    assert [type(m) for m in model.modules()] == types and not is_quantized(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_default_precision_is_fp32_and_the_fp32_path_is_unchanged(tiny) -> None:
    model, tokenizer = tiny
    default = RerankPruner(model, tokenizer, device="cpu")
    assert default.precision == "fp32" and not is_quantized(default.model)
    assert sample_scores(default) == sample_scores(
        RerankPruner(model, tokenizer, device="cpu", precision="fp32")
    )


@pytest.mark.parametrize("bad", ["int4", "FP32", "bf16", ""])
def test_a_bad_precision_names_the_choices(tiny, bad: str) -> None:
    model, tokenizer = tiny
    with pytest.raises(
        ValueError, match=r"precision=.*use one of \('fp32', 'int8', 'onnx-fp32', 'onnx-int8'\)"
    ):
        RerankPruner(model, tokenizer, device="cpu", precision=bad)
    assert PRECISIONS == ("fp32", "int8", "onnx-fp32", "onnx-int8")


def test_load_checks_the_options_before_the_weights(monkeypatch) -> None:
    import ragprune.models.registry

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before its options were checked")

    monkeypatch.setattr(ragprune.models.registry, "load_model", never)
    with pytest.raises(ValueError, match="use one of"):
        RerankPruner.load(device="cpu", precision="bogus")
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        RerankPruner.load(device="cpu", threshold=2.0)


def test_int8_on_cuda_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="CPU only.*device='cpu'"):
        checked_precision("int8", torch.device("cuda"))
    assert checked_precision("fp32", torch.device("cuda")) == "fp32"


def test_load_passes_precision(tiny_model_dir: Path) -> None:
    with RerankPruner.load(tiny_model_dir, device="cpu", precision="int8") as pruner:
        assert pruner.precision == "int8" and is_quantized(pruner.model)


def _trec_files(tmp_path: Path) -> list[str]:
    files = {
        "topics": "q1\thow long do fleas live\n",
        "passages": "".join(f"p{i}\t{text}\n" for i, text in enumerate(TEXTS)),
        "run": "".join(f"q1 Q0 p{i} {i + 1} {10 - i} bm25\n" for i in range(len(TEXTS))),
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    return ["--queries", str(tmp_path / "topics"), "--run", str(tmp_path / "run")] + [
        "--passages",
        str(tmp_path / "passages"),
    ]


@pytest.mark.parametrize("precision", TORCH_PRECISIONS)
def test_cli_rerank_accepts_precision(tmp_path, tiny_model_dir, precision: str) -> None:
    out = tmp_path / "out.trec"
    args = ["rerank", *_trec_files(tmp_path), "--output", str(out), "--model", str(tiny_model_dir)]
    assert main([*args, "--device", "cpu", "--precision", precision]) == 0
    assert len(out.read_text().splitlines()) == len(TEXTS)


@pytest.mark.parametrize(
    "precision",
    [
        *TORCH_PRECISIONS,
        *(
            pytest.param(p, marks=pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx extra"))
            for p in ONNX
        ),
    ],
)
def test_cli_prune_accepts_precision(tmp_path, tiny_model_dir, precision: str, monkeypatch) -> None:
    monkeypatch.setenv("RAGPRUNE_CACHE", str(tmp_path / "cache"))  # ONNX files: never the user's cache
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"query": QUERY, "passages": TEXTS}) + "\n")
    args = ["prune", "--input", str(source), "--output", str(out), "--model", str(tiny_model_dir)]
    assert main([*args, "--device", "cpu", "--precision", precision]) == 0
    assert len(json.loads(out.read_text())["passages"]) == len(TEXTS)


def test_cli_rejects_an_unknown_precision(tmp_path, tiny_model_dir, capsys) -> None:
    args = ["rerank", *_trec_files(tmp_path), "--output", str(tmp_path / "o"), "--model", str(tiny_model_dir)]
    with pytest.raises(SystemExit):
        main([*args, "--precision", "int4"])
    assert "fp32" in capsys.readouterr().err


def test_cli_int8_needs_the_inline_engine(tmp_path, tiny_model_dir, capsys) -> None:
    args = ["rerank", *_trec_files(tmp_path), "--output", str(tmp_path / "o"), "--model", str(tiny_model_dir)]
    assert main([*args, "--engine", "local", "--precision", "int8"]) == 2
    assert "--engine inline" in capsys.readouterr().err
