"""The ONNX Runtime encoder backend (``precision="onnx-fp32"`` / ``"onnx-int8"``,
``ragprune.pipeline.onnx_backend``) on the tiny model: equality with torch, the cache, errors."""

from __future__ import annotations

import ast
import copy
import json
import sys
from pathlib import Path

import pytest
import torch
from sample_texts import QUERY, TEXTS, assert_scores_close, sample_scores

from ragprune.cli import main
from ragprune.models import load_model
from ragprune.pipeline import RerankPruner
from ragprune.pipeline.precision import checked_precision

pytest.importorskip("onnxruntime", reason="needs the onnx extra")
pytest.importorskip("onnx", reason="needs the onnx extra")

from ragprune.pipeline import onnx_backend  # noqa: E402  (after the skips: it needs the extra to run)

# onnx-fp32 runs the same fp32 arithmetic in another order (fused attention and LayerNorm): ~1e-6 on the
# tiny model and on the shipped one (measured); 1e-4 is the brief's bar and far below any fusion error.
FP32_TOLERANCE = 1e-4
# onnx-int8: per-channel int8 weights and per-batch uint8 activations through two layers move the tiny
# model's logits and sentence probabilities by ~1e-3 (measured); 1e-2 still catches a wrong graph (O(0.1-1)).
INT8_TOLERANCE = 1e-2


@pytest.fixture(autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One ONNX cache folder for the module's tests (never the user's ~/.cache)."""
    folder = tmp_path_factory.getbasetemp() / "onnx_cache"
    monkeypatch.setenv("RAGPRUNE_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_model(tiny_model_dir)


@pytest.mark.parametrize(
    ("precision", "tolerance"), [("onnx-fp32", FP32_TOLERANCE), ("onnx-int8", INT8_TOLERANCE)]
)
def test_onnx_scores_match_fp32(tiny, precision: str, tolerance: float) -> None:
    model, tokenizer = tiny
    fp32 = RerankPruner(model, tokenizer, device="cpu")
    onnx = RerankPruner(model, tokenizer, device="cpu", precision=precision)
    assert onnx.precision == precision and isinstance(onnx.model.encoder, onnx_backend.OnnxEncoder)
    assert_scores_close(sample_scores(fp32), sample_scores(onnx), tolerance)


def test_onnx_fp32_scores_do_not_depend_on_the_batch(tiny) -> None:
    model, tokenizer = tiny
    onnx = RerankPruner(model, tokenizer, device="cpu", precision="onnx-fp32", batch_size=64)
    together = sample_scores(onnx)
    alone = [sample_scores(onnx, [text]) for text in TEXTS]
    assert together[0] == [logits[0] for logits, _ in alone]
    assert together[1] == [sentences[0] for _, sentences in alone]


def test_the_file_is_built_once_and_the_callers_model_is_unchanged(tiny, monkeypatch, cache) -> None:
    model, tokenizer = tiny
    before = copy.deepcopy(model.state_dict())
    first = onnx_backend.encoder_file(model, "onnx-fp32")
    assert first.is_relative_to(cache) and first.exists()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached file should have been reused")

    monkeypatch.setattr(onnx_backend, "_fused_fp32", no_rebuild)
    assert onnx_backend.encoder_file(model, "onnx-fp32") == first
    RerankPruner(model, tokenizer, device="cpu", precision="onnx-fp32").process(QUERY, TEXTS)
    assert not isinstance(model.encoder, onnx_backend.OnnxEncoder)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_int8_is_quantized_from_the_cached_fp32_file(tiny, monkeypatch, tmp_path) -> None:
    model, _ = tiny
    onnx_backend.encoder_file(model, "onnx-fp32", root=tmp_path)
    sources = []
    quantize = onnx_backend._quantized
    monkeypatch.setattr(onnx_backend, "_fused_fp32", lambda *a: pytest.fail("the fp32 file was not reused"))
    monkeypatch.setattr(
        onnx_backend, "_quantized", lambda source, target: sources.append(source) or quantize(source, target)
    )
    built = onnx_backend.encoder_file(model, "onnx-int8", root=tmp_path)
    assert built.exists() and sources == [onnx_backend.encoder_file(model, "onnx-fp32", root=tmp_path)]


def test_other_weights_get_another_file(tiny) -> None:
    model, _ = tiny
    changed = copy.deepcopy(model)
    with torch.no_grad():
        next(changed.encoder.parameters()).add_(1.0)
    assert onnx_backend.encoder_file(changed, "onnx-fp32") != onnx_backend.encoder_file(model, "onnx-fp32")


def test_a_fused_graph_that_differs_from_torch_is_refused(tiny, monkeypatch, tmp_path) -> None:
    model, _ = tiny
    monkeypatch.setattr(onnx_backend, "FP32_TOLERANCE", -1.0)  # any difference at all fails
    with pytest.raises(RuntimeError, match="differs from torch.*precision='fp32'"):
        onnx_backend.encoder_file(model, "onnx-fp32", root=tmp_path)


def test_a_wrong_fusion_falls_back_to_the_plain_export(tiny, monkeypatch, tmp_path) -> None:
    import onnx
    from onnx import numpy_helper

    def wrong_fusion(source: Path, target: Path, model) -> Path:
        graph = onnx.load(str(source))
        weight = max(graph.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
        weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) + 1.0, weight.name))
        onnx.save(graph, str(target))
        return target

    model, _ = tiny
    monkeypatch.setattr(onnx_backend, "_fuse", wrong_fusion)
    built = onnx_backend.encoder_file(model, "onnx-fp32", root=tmp_path)
    probe = onnx_backend._probe_inputs(model.backbone_config.vocab_size)
    with torch.no_grad():
        expected = model.encode(*(probe[name] for name in onnx_backend.INPUT_NAMES))
    got = onnx_backend.OnnxEncoder(built)(**probe).last_hidden_state
    real = probe["attention_mask"].bool()
    assert torch.allclose(got[real], expected[real], atol=FP32_TOLERANCE)


@pytest.mark.parametrize("missing", ["onnxruntime", "onnx"])
def test_without_the_extra_the_error_names_it(tiny, monkeypatch, missing: str) -> None:
    model, tokenizer = tiny
    monkeypatch.setitem(sys.modules, missing, None)  # import <missing> -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'ragprune\[onnx\]'"):
        RerankPruner(model, tokenizer, device="cpu", precision="onnx-int8")


def test_cli_without_onnxruntime_is_a_one_line_error(tmp_path, tiny_model_dir, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"query": QUERY, "passages": TEXTS}) + "\n")
    args = ["prune", "--input", str(source), "--output", str(tmp_path / "out.jsonl")]
    assert main([*args, "--model", str(tiny_model_dir), "--device", "cpu", "--precision", "onnx-fp32"]) == 2
    assert "ragprune[onnx]" in capsys.readouterr().err


@pytest.mark.parametrize("precision", onnx_backend.ONNX_PRECISIONS)
def test_onnx_on_cuda_is_a_clear_error(precision: str) -> None:
    with pytest.raises(ValueError, match="CPU only.*device='cpu'"):
        checked_precision(precision, torch.device("cuda"))


def test_only_the_onnx_path_imports_onnxruntime() -> None:
    """The CUDA and torch paths never load ORT (the GPU machine has none): read from the source, ``onnx`` and
    ``onnxruntime`` are imported only inside functions of ``onnx_backend``, which ``precision`` imports
    lazily, only for an ONNX precision."""
    root = Path(onnx_backend.__file__).parents[1]
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] in ("onnx", "onnxruntime"):
                    assert path.name == "onnx_backend.py" and id(node) not in top_level, (path, name)
                if name == "ragprune.pipeline.onnx_backend":
                    assert path.name == "precision.py" and id(node) not in top_level, (path, name)
