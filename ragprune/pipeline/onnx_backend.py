"""ONNX Runtime (ORT) backend for the encoder on the CPU: ``precision="onnx-fp32"`` or ``"onnx-int8"``.

The model's encoder (embeddings and transformer blocks, not the heads) is exported once to ONNX, fused
and, for ``"onnx-int8"``, quantized; the file is cached (:func:`cache_dir`) and later loads reuse it, so
nothing is downloaded or rebuilt at run time. The heads, sentence scoring and everything after the
encoder stay in torch: :class:`OnnxEncoder` replaces ``model.encoder`` and returns the same
``last_hidden_state`` ``[B, L, H]`` float32.

Build steps (each from the libraries' own documentation):

1. **export**: ``torch.onnx.export(..., dynamo=False)`` (the TorchScript exporter; opset 17, dynamic batch
   and length) of the encoder with *eager* attention: transformers' SDPA path exports as a masked
   ``Where``/``IsNaN`` graph that ORT's attention fusion does not recognise, while the eager path fuses
   (PyTorch docs, "torch.onnx"; transformers docs, "Attention interface").
2. **fuse** (BERT-type encoders): ``onnxruntime.transformers.optimizer.optimize_model(model_type="bert")``
   folds each block into ``Attention``, ``SkipLayerNormalization`` and ``BiasGelu`` and the embeddings into
   ``EmbedLayerNormalization`` (ORT docs, "Transformer Model Optimization Tool"). The fused attention
   reads the mask as a per-row count of real tokens, which is exact for right-padded rows: the
   pipeline's rows (``ragprune.pipeline.collate.pad_block``) always are. The fused file is checked against
   torch on a probe batch (:data:`FP32_TOLERANCE`) before it is cached; if it fails, the plain export is
   checked and used instead.
3. **quantize** (``"onnx-int8"``): ``onnxruntime.quantization.quantize_dynamic`` (ORT docs,
   "Quantize ONNX models" -> dynamic quantization) of the fused graph's ``MatMul`` and ``Attention``
   weights to int8 with one scale per output channel (``per_channel=True``); activations are quantized
   to uint8 per batch from their observed range; embeddings, LayerNorm, softmax and the heads stay
   fp32. Keeping the last layer or the feed-forward output products in fp32 was measured and did not
   bring DL19 nDCG@10 closer to fp32 (``eval/results/bench_cpu.md``), so every product is quantized.

Needs the ``onnx`` extra (``onnxruntime`` and ``onnx``); asking for an ONNX precision without it is an
``ImportError`` that names the install command. Only the CPU runs it (``checked_precision``); the
CUDA path never imports ORT.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from ragprune.models.encoder import RerankPruneModel

ONNX_PRECISIONS = ("onnx-fp32", "onnx-int8")
"""The ``precision`` values this module serves."""

INSTALL_HINT = "pip install 'ragprune[onnx]' (onnxruntime and onnx)"

BUILD_VERSION = 1
"""Part of the cache key: raise it when the build steps change, so stale files are not reused."""

OPSET = 17
FP32_TOLERANCE = 1e-3
"""Largest |hidden state difference| allowed between the fused fp32 graph and torch on the probe batch
(measured ~1e-5 on the shipped model; a wrong fusion is off by O(1))."""

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def onnxruntime_module() -> ModuleType:
    """``onnxruntime``, or ``ImportError`` naming the extra to install; the extra's ``onnx`` package too
    (the exporter needs it to build a file)."""
    try:
        import onnx  # noqa: F401  (checked here: without it the export fails deep inside torch)
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            f"precision='onnx-fp32'/'onnx-int8' needs onnxruntime and onnx: {INSTALL_HINT}"
        ) from error
    return onnxruntime


def cache_dir() -> Path:
    """Where built ONNX files live: ``$RAGPRUNE_CACHE/onnx``, else ``$XDG_CACHE_HOME/ragprune/onnx``, else
    ``~/.cache/ragprune/onnx``."""
    if os.environ.get("RAGPRUNE_CACHE"):
        return Path(os.environ["RAGPRUNE_CACHE"]) / "onnx"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ragprune" / "onnx"


class OnnxEncoder(nn.Module):
    """Runs an ONNX encoder file in an ORT session; called like a Hugging Face encoder.

    ``threads``: ORT's intra-op threads (``None``: ``torch.get_num_threads()``, every core torch uses).
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__()
        ort = onnxruntime_module()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> BaseModelOutput:
        """``last_hidden_state`` ``[B, L, H]`` float32 (CPU) for ``[B, L]`` int64 inputs; the rows must be
        right-padded (``attention_mask`` a prefix of ones). ``token_type_ids`` ``None``: zeros."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        feed = {name: _int64(given[name]) for name in self.input_names}
        (hidden,) = self.session.run(["hidden"], feed)
        return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))

    def __deepcopy__(self, memo: dict[int, Any]) -> OnnxEncoder:
        return OnnxEncoder(self.path, self.session.get_session_options().intra_op_num_threads)


def _int64(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.int64).numpy()


def onnx_model(model: RerankPruneModel, precision: str, threads: int | None = None) -> RerankPruneModel:
    """A copy of ``model`` (CPU, fp32, eval mode) whose encoder runs in ORT at ``precision`` (one of
    ``ONNX_PRECISIONS``), built or taken from :func:`cache_dir`; ``model`` itself is not changed.
    ``ImportError`` without onnxruntime / onnx (naming the extra)."""
    if precision not in ONNX_PRECISIONS:
        raise ValueError(f"precision={precision!r}; this backend runs {ONNX_PRECISIONS}")
    onnxruntime_module()
    path = encoder_file(model, precision)
    encoder = OnnxEncoder(path, threads)
    # memo: deepcopy puts the ORT encoder where the torch encoder was, without copying its weights
    ready = copy.deepcopy(model, memo={id(model.encoder): encoder})
    return ready.to("cpu", torch.float32).eval()


def encoder_file(model: RerankPruneModel, precision: str, root: Path | None = None) -> Path:
    """The cached ONNX file of ``model``'s encoder at ``precision``, built on first use (under
    ``root``, default :func:`cache_dir`). The key hashes the encoder's weights and config, the precision,
    :data:`BUILD_VERSION` and the torch / onnxruntime / onnx versions; files are written atomically."""
    target = _cached_path(model, precision, root)
    if target.exists():
        return target
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=folder) as work:
            if precision == "onnx-fp32":
                built = _fused_fp32(model, Path(work))
            else:  # quantize the cached fp32 graph when there is one: no second export and fusion
                fp32 = _cached_path(model, "onnx-fp32", root)
                fused = fp32 if fp32.exists() else _fused_fp32(model, Path(work))
                built = _quantized(fused, Path(work) / "int8.onnx")
            os.replace(built, target)
    except BaseException:
        with contextlib.suppress(OSError):  # a failed build leaves no empty key folder behind
            folder.rmdir()
        raise
    return target


def _cached_path(model: RerankPruneModel, precision: str, root: Path | None) -> Path:
    """Where :func:`encoder_file` keeps ``model``'s encoder at ``precision`` (it may not exist yet)."""
    return (root or cache_dir()) / _cache_key(model, precision) / f"encoder.{precision}.onnx"


def _cache_key(model: RerankPruneModel, precision: str) -> str:
    import onnx

    ort = onnxruntime_module()
    digest = hashlib.sha256()
    header = {
        "precision": precision,
        "build": BUILD_VERSION,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
        "config": model.backbone_config.to_dict(),
        "structure": model.config.encoder_structure,
    }
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


class _EncoderForExport(nn.Module):
    """``RerankPruneModel.encode`` as a module with positional inputs (what the exporter traces)."""

    def __init__(self, model: RerankPruneModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        return self.model.encode(input_ids, attention_mask, token_type_ids)


def _probe_inputs(vocab_size: int) -> dict[str, torch.Tensor]:
    """A deterministic right-padded batch ``[3, 24]`` (rows of 24, 17 and 9 tokens, types 0 then 1)."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1000 % vocab_size, vocab_size, (3, 24), generator=generator)
    lengths = torch.tensor([24, 17, 9])
    positions = torch.arange(24)
    attention_mask = (positions < lengths[:, None]).long()
    token_type_ids = ((positions >= 6) & attention_mask.bool()).long()
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def _fused_fp32(model: RerankPruneModel, work: Path) -> Path:
    """Export ``model``'s encoder to ``work`` and fuse it (BERT-type); the path of the fused graph if it
    matches torch on the probe batch within :data:`FP32_TOLERANCE`, else of the plain export if that does
    (a fusion can misread an encoder whose layers lost heads to weight pruning), else ``RuntimeError``."""
    export = copy.deepcopy(model).to("cpu", torch.float32).eval()
    set_attention = getattr(export.encoder, "set_attn_implementation", None)
    if callable(set_attention):
        set_attention("eager")  # see the module docstring, step 1
    probe = _probe_inputs(model.backbone_config.vocab_size)
    with torch.no_grad():  # before the export: computed after it, it was off by O(1) (measured)
        expected = export.encode(*(probe[name] for name in INPUT_NAMES))
    raw = work / "encoder.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's tracer warnings on shape arithmetic
        torch.onnx.export(
            _EncoderForExport(export),
            tuple(probe[name] for name in INPUT_NAMES),
            str(raw),
            input_names=list(INPUT_NAMES),
            output_names=["hidden"],
            dynamic_axes={name: {0: "batch", 1: "length"} for name in (*INPUT_NAMES, "hidden")},
            opset_version=OPSET,
            dynamo=False,
        )
    real = probe["attention_mask"].bool()
    error = float("inf")
    for candidate in (_fuse(raw, work / "fused.onnx", model), raw):  # the plain graph if fusion is wrong
        got = OnnxEncoder(candidate, threads=1)(**probe).last_hidden_state
        error = float((got - expected)[real].abs().max())
        if error <= FP32_TOLERANCE:
            return candidate
    raise RuntimeError(
        f"the ONNX encoder differs from torch by {error:.2e} (> {FP32_TOLERANCE:g}) on a probe batch; "
        "use precision='fp32' for this model"
    )


def _fuse(source: Path, target: Path, model: RerankPruneModel) -> Path:
    """ORT's transformer fusions for BERT-type encoders (``model_type`` bert, roberta, ...); other types
    keep the plain graph (ORT's generic graph optimizations still run when the session loads)."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model

    model_type = model.backbone_config.model_type
    if model_type not in MODEL_TYPES:
        return source
    config = model.backbone_config  # ORT cannot read the head count from this graph (0 fails to fuse)
    optimized = optimize_model(
        str(source),
        model_type=model_type,
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        opt_level=0,
        use_gpu=False,
    )
    optimized.save_model_to_file(str(target))
    return target


def _quantized(source: Path, target: Path) -> Path:
    """Dynamic int8 of ``source``'s ``MatMul`` and ``Attention`` weights, per channel (step 3)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ORT's quantizer logs through the root logger, which would install a handler in the caller's process
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            quantize_dynamic(
                str(source),
                str(target),
                op_types_to_quantize=["MatMul", "Attention"],
                per_channel=True,
                weight_type=QuantType.QInt8,
                # the fused ops are in the com.microsoft domain, which shape inference does not type
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    finally:
        root.handlers[:] = handlers
    return target
