"""GPU check and benchmark of the sentence-scoring kernel (token head -> sentence decisions).

Run from the repository root on a CUDA machine with Triton:

    python3 kernels/bench_sentence_scoring.py

It measures the two ceilings first (device-to-device copy bandwidth, bf16 matrix-product rate), checks
the kernel against the float64 oracle on freshly drawn inputs (outputs poisoned before each run), and
its reduction-only path (``reduce_sentences``) against the torch path bit for bit, then times, for
4,096 pairs x 256 tokens in bf16 at each hidden size: the kernel, the same semantics in eager torch,
the reduction-only kernel from float32 probabilities, the Provence-style per-sample NumPy loop on the
CPU (timed on a subset, extrapolated linearly), and an encoder forward pass of the matching shape, to
put the post-encoder step in proportion.  The oracle, the baseline loop and the synthetic batches live
beside this script (``sentence_scoring_reference.py``, ``sentence_scoring_checks.py``).
Results go to ``$OUT`` (default ``./runs/kernels``) as ``sentence_scoring.json`` and
``sentence_scoring.md``; the markdown table is printed last.  Exit status 1 if any check fails.

``--dry-run`` runs every step on the CPU under the Triton interpreter at toy sizes, to check the script
itself without a GPU; its timings mean nothing and its report says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_scoring_checks import (  # noqa: E402  (beside this script)
    SCORE_TOLERANCE,
    BatchSpec,
    compare_with_reference,
    decisions_agree,
    synthetic_batch,
)
from sentence_scoring_reference import (  # noqa: E402  (beside this script)
    reduce_per_sample,
    reference_scores,
    token_probabilities_per_sample,
)

from ragprune.kernels import REDUCTIONS, SentenceScores, torch_backend  # noqa: E402
from ragprune.kernels.semantics import (  # noqa: E402
    ScoringInputs,
    check_index_ranges,
    prepare_reduction_inputs,
    prepare_scoring_inputs,
)

# Encoders of the two benchmark widths: MiniLM-L6 (the project's PyPI backbone) and a 24-layer large model.
DEVICE = "cuda"  # "cpu" under --dry-run

ENCODER_SHAPES = {
    384: {"num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
    1024: {"num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
    48: {"num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 96},  # --dry-run only
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=4096)
    parser.add_argument("--tokens", type=int, default=256, help="tokens per pair (one full row each)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[384, 1024])
    parser.add_argument("--loop-pairs", type=int, default=256, help="pairs the CPU loop is timed on")
    parser.add_argument("--seed", type=int, default=None, help="default: fresh from the clock, recorded")
    parser.add_argument("--no-encoder", action="store_true", help="skip the encoder forward timing")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "runs/kernels"))
    parser.add_argument("--dry-run", action="store_true", help="CPU + Triton interpreter, toy sizes")
    args = parser.parse_args()
    if args.dry_run:
        args.pairs, args.tokens, args.hidden, args.loop_pairs = 8, 64, [48], 4
    return args


def median_ms(fn: Callable[[], Any]) -> float:
    """Median time of ``fn`` in milliseconds by CUDA events (Triton's do_bench: warm-up, L2 flush)."""
    if DEVICE == "cpu":  # dry run: a few host-clock repeats, only to exercise the code
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=50, rep=400, return_mode="median"))


def gpu_state() -> str:
    try:
        query = "name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw"
        completed = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return completed.stdout.strip() or completed.stderr.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return f"nvidia-smi unavailable: {error}"


def measure_ceilings() -> dict[str, float]:
    """Copy bandwidth (bytes read + written) and bf16 matrix-product rate, on random data."""
    copy_bytes, copy_ms = _time_copy()
    size, matmul_ms = _time_matmul()
    _release_memory()
    return {
        "copy_bytes": copy_bytes,
        "copy_ms": copy_ms,
        "copy_gbps": copy_bytes / (copy_ms * 1e-3) / 1e9,
        "matmul_ms": matmul_ms,
        "bf16_tflops": 2.0 * size**3 / (matmul_ms * 1e-3) / 1e12,
    }


def _time_copy() -> tuple[float, float]:
    """(bytes read + written, ms) of a device-to-device copy of 2 GiB, far beyond the 60 MB L2."""
    n = 1 << 30 if DEVICE == "cuda" else 1 << 20
    source = torch.randn(n, device=DEVICE, dtype=torch.bfloat16)
    target = torch.empty_like(source)
    return 4.0 * n, median_ms(lambda: target.copy_(source))


def _time_matmul() -> tuple[int, float]:
    size = 8192 if DEVICE == "cuda" else 256
    a = torch.randn(size, size, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=DEVICE, dtype=torch.bfloat16)
    return size, median_ms(lambda: a @ b)


def check_kernel(arguments: dict[str, Any], reduce: str, label: str, config: Any = None) -> dict[str, Any]:
    """Kernel vs float64 oracle, with poisoned outputs, twice (NaN/True then NaN/False), plus vs torch;
    the reduction-only kernel on the torch path's probabilities vs the torch path, bit for bit."""

    inputs = prepare_scoring_inputs(reduce=reduce, **arguments)
    check_index_ranges(inputs)
    runs = [_poisoned_run(inputs, config, poison) for poison in (True, False)]
    reference = reference_scores(reduce=reduce, **arguments)
    comparison = compare_with_reference(runs[0], reference)
    torch_result = torch_backend.run(inputs)
    stable = torch.equal(runs[0].keep, runs[1].keep) and torch.equal(runs[0].scores, runs[1].scores)
    agree = decisions_agree(runs[0], torch_result, reference)
    probabilities = torch_backend.token_probabilities(inputs.head)
    reduction = prepare_reduction_inputs(
        probabilities, inputs.sentence_ids, inputs.sentence_pair, inputs.thresholds, reduce, inputs.num_pairs
    )
    reduced = _poisoned_run(reduction, config, poison=True)
    reduction_identical = torch.equal(reduced.scores, torch_result.scores) and torch.equal(
        reduced.keep, torch_result.keep
    )
    ok = comparison.ok(SCORE_TOLERANCE) and stable and agree and reduction_identical
    hidden = inputs.head.hidden
    return {
        "label": label,
        "reduce": reduce,
        "dtype": str(hidden.dtype).removeprefix("torch."),
        "tokens": hidden.shape[0],
        "hidden": hidden.shape[1],
        "sentences": inputs.num_sentences,
        "pairs": inputs.num_pairs,
        "config": dataclasses.asdict(config) if config is not None else "default",
        **dataclasses.asdict(comparison),
        "repeat_identical": stable,
        "torch_decisions_agree": agree,
        "reduction_identical": reduction_identical,
        "ok": ok,
    }


def _poisoned_run(inputs: ScoringInputs, config: Any, poison: bool) -> SentenceScores:
    """The kernels on outputs pre-filled with NaN scores and ``poison`` flags (unwritten ones show)."""
    from ragprune.kernels import triton_backend

    out = SentenceScores(
        scores=torch.full((inputs.num_sentences,), math.nan, device=DEVICE),
        keep=torch.full((inputs.num_sentences,), poison, device=DEVICE),
    )
    result = triton_backend.run(inputs, config, out=out)
    _synchronize()  # surfaces any launch or memory error here
    return result


def small_cases(seed: int, max_pairs: int) -> list[dict[str, Any]]:
    """Freshly drawn awkward ragged batches: every dtype, odd widths, split sentences, several configs."""
    from ragprune.kernels.triton_backend import KernelConfig

    rng = np.random.default_rng(seed)
    widths = [1, 37, 384, 1000, 1024] if DEVICE == "cuda" else [1, 37, 48]
    configs = [None, KernelConfig(block_tokens=16, block_hidden=32), KernelConfig(segment_scan=False)]
    results = []
    for index, (dtype, reduce) in enumerate(
        (dtype, reduce) for dtype in ("bfloat16", "float16", "float32") for reduce in REDUCTIONS
    ):
        spec = BatchSpec(
            num_pairs=int(rng.integers(1, max_pairs + 1)),
            hidden_size=int(rng.choice(widths)),
            seed=int(rng.integers(2**31)),
            dtype=dtype,
            row_length=int(rng.choice([24, 128, 512])),
            sentence_tokens=(1, int(rng.choice([1, 8, 60]))),
            sentences_per_pair=(0, int(rng.integers(1, 30))),
            empty_sentence_rate=0.2,
            padded=bool(rng.integers(2)),
            per_pair_thresholds=bool(rng.integers(2)),
            id_dtype=str(rng.choice(["int32", "int64"])),
        )
        config = configs[index % len(configs)]
        arguments = synthetic_batch(spec, DEVICE).arguments
        results.append(check_kernel(arguments, reduce, f"ragged #{index}", config))
    return results


def benchmark_spec(pairs: int, tokens: int, hidden: int, seed: int) -> BatchSpec:
    """The benchmark batch: every pair one full row of ``tokens``, ~16-token query, 4-40-token sentences."""
    return BatchSpec(
        num_pairs=pairs,
        hidden_size=hidden,
        seed=seed,
        dtype="bfloat16",
        row_length=tokens,
        query_tokens=(8, 24),
        sentence_tokens=(4, 40),
        sentences_per_pair=None,
        padded=True,
        per_pair_thresholds=True,
        id_dtype="int32",
    )


def floors(arguments: dict[str, Any], passage_tokens: int, ceilings: dict[str, float]) -> dict[str, float]:
    """Fewest bytes and flops of the semantics, and the times they imply at the measured ceilings.

    Bytes: the hidden rows that must be read (passage tokens), every token's sentence id, each
    sentence's pair and each pair's threshold once, and the outputs written once (float32 score + bool
    keep per sentence).  Flops: one multiply-add per hidden value read.
    """
    hidden = arguments["hidden"]
    width, element = hidden.shape[-1], hidden.element_size()
    pairs = arguments["num_pairs"]
    sentences = arguments["sentence_pair"].shape[0]
    rows_read = passage_tokens
    bytes_needed = (
        rows_read * width * element
        + arguments["sentence_ids"].numel() * arguments["sentence_ids"].element_size()
        + sentences * (arguments["sentence_pair"].element_size() + 4 + 1)
        + pairs * 4
    )
    flops = 2.0 * rows_read * width
    return {
        "rows_read": rows_read,
        "rows_total": hidden.numel() // width,
        "bytes": bytes_needed,
        "flops": flops,
        "memory_floor_us": bytes_needed / (ceilings["copy_gbps"] * 1e9) * 1e6,
        "compute_floor_us": flops / (ceilings["bf16_tflops"] * 1e12) * 1e6,
    }


def sweep_candidates(width: int) -> list[Any]:
    """Launch configurations the sweep times at ``width``: the default first, no duplicates."""
    from ragprune.kernels.triton_backend import KernelConfig, default_config

    default = default_config(width)
    shapes = [
        (64, 128, 4),
        (32, 128, 4),
        (128, 64, 8),
        (64, 128, 8),
        (128, 128, 8),
        (32, 256, 8),
        (16, 256, 4),
    ]
    candidates = [
        default,
        *(KernelConfig(block_tokens=t, block_hidden=h, num_warps=w) for t, h, w in shapes),
        dataclasses.replace(default, segment_scan=False),
        dataclasses.replace(default, num_stages=1),
    ]
    return list(dict.fromkeys(candidates))


def sweep_configs(inputs: ScoringInputs) -> list[dict[str, Any]]:
    from ragprune.kernels import triton_backend

    candidates = sweep_candidates(inputs.head.hidden.shape[1])
    rows = []
    for config in candidates:
        rows.append(
            {
                "config": dataclasses.asdict(config),
                "ms": median_ms(lambda c=config: triton_backend.run(inputs, c)),
            }
        )
    return rows


def time_cpu_loop(arguments: dict[str, Any], loop_pairs: int, reduce: str) -> dict[str, Any]:
    """Time the per-sample NumPy loop on the first ``loop_pairs`` rows (one row per pair here)."""
    hidden = arguments["hidden"][:loop_pairs].float().cpu().numpy()
    ids = arguments["sentence_ids"][:loop_pairs].cpu().numpy()
    sentences = int(ids.max()) + 1
    pair = arguments["sentence_pair"][:sentences].cpu().numpy()
    thresholds = arguments["thresholds"][:loop_pairs].cpu().numpy()
    weight = arguments["token_weight"].cpu().numpy()
    bias = float(arguments["token_bias"])
    projection, reduction = [], []
    for _ in range(3):
        start = time.perf_counter()
        probabilities = token_probabilities_per_sample(hidden, weight, bias)
        middle = time.perf_counter()
        scores, keep = reduce_per_sample(probabilities, ids, pair, thresholds, reduce)
        projection.append(middle - start)
        reduction.append(time.perf_counter() - middle)
    reference = reference_scores(
        torch.from_numpy(hidden),
        arguments["token_weight"].cpu(),
        bias,
        torch.from_numpy(ids),
        torch.from_numpy(pair),
        torch.from_numpy(thresholds),
        reduce,
        num_pairs=loop_pairs,
    )
    clear = reference.margins > 1e-5
    scale = arguments["num_pairs"] / loop_pairs
    return {
        "pairs_timed": loop_pairs,
        "scale": scale,
        "projection_ms": statistics.median(projection) * 1e3 * scale,
        "reduction_ms": statistics.median(reduction) * 1e3 * scale,
        "total_ms": (statistics.median(projection) + statistics.median(reduction)) * 1e3 * scale,
        "decisions_agree": bool(np.array_equal(keep[clear], reference.keep[clear])),
        "cpu": _cpu_name(),
        "torch_threads": torch.get_num_threads(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x {os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.processor() or 'unknown'} x {os.cpu_count()}"


def time_encoder(hidden: int, pairs: int, tokens: int) -> dict[str, Any]:
    """Forward time of a BERT-shaped encoder of width ``hidden`` (random weights, bf16, SDPA attention)."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        hidden_size=hidden,
        max_position_embeddings=max(512, tokens),
        attn_implementation="sdpa",
        **ENCODER_SHAPES[hidden],
    )
    model = BertModel(config, add_pooling_layer=False)
    model = model.to(device=DEVICE, dtype=torch.bfloat16).eval()
    generator = torch.Generator(device=DEVICE).manual_seed(0)
    input_ids = torch.randint(1000, config.vocab_size, (pairs, tokens), device=DEVICE, generator=generator)
    with torch.inference_mode():
        model(input_ids=input_ids)  # warm-up
        times = [time_once_ms(lambda: model(input_ids=input_ids)) for _ in range(3)]
    return {
        "config": {k: getattr(config, k) for k in ("hidden_size", *ENCODER_SHAPES[hidden])},
        "ms": statistics.median(times),
    }


def benchmark_width(
    args: argparse.Namespace, width: int, seed: int, ceilings: dict[str, float]
) -> dict[str, Any]:
    """Checks and timings at one hidden size; the encoder runs after the batch has been freed."""
    result = _score_batch(args, width, seed, ceilings)
    _release_memory()
    if not args.no_encoder:
        try:
            result["encoder"] = time_encoder(width, args.pairs, args.tokens)
        except Exception as error:  # noqa: BLE001 - the rest of the report stands without it
            result["encoder"] = {"error": repr(error)}
        _release_memory()
    return result


def _score_batch(
    args: argparse.Namespace, width: int, seed: int, ceilings: dict[str, float]
) -> dict[str, Any]:
    from ragprune.kernels import score_sentences, triton_backend
    from ragprune.kernels.triton_backend import default_config

    batch = synthetic_batch(benchmark_spec(args.pairs, args.tokens, width, seed), DEVICE)
    arguments = batch.arguments
    label = f"{args.pairs}x{args.tokens} H={width}"
    checks = [check_kernel(arguments, reduce, label) for reduce in REDUCTIONS]  # correct first, then fast
    kernel_ms, torch_ms, reduction_ms, api_ms = {}, {}, {}, {}
    for reduce in REDUCTIONS:
        inputs = prepare_scoring_inputs(reduce=reduce, **arguments)
        kernel_ms[reduce] = median_ms(lambda i=inputs: triton_backend.run(i))
        torch_ms[reduce] = median_ms(lambda i=inputs: torch_backend.run(i))
    probabilities = torch_backend.token_probabilities(inputs.head)
    reduction = prepare_reduction_inputs(
        probabilities, inputs.sentence_ids, inputs.sentence_pair, inputs.thresholds, "mean", inputs.num_pairs
    )
    reduction_ms["kernel"] = median_ms(lambda: triton_backend.run(reduction))
    reduction_ms["torch"] = median_ms(lambda: torch_backend.run(reduction))
    for validate in (False, True):
        api_ms[f"validate={validate}"] = median_ms(
            lambda v=validate: score_sentences(reduce="mean", backend="triton", validate=v, **arguments)
        )
    return {
        "hidden": width,
        "sentences": arguments["sentence_pair"].shape[0],
        "floors": floors(arguments, batch.passage_tokens, ceilings),
        "checks": checks,
        "default_config": dataclasses.asdict(default_config(width)),
        "kernel_ms": kernel_ms,
        "torch_ms": torch_ms,
        "reduction_ms": reduction_ms,
        "api_ms": api_ms,
        "sweep": sweep_configs(prepare_scoring_inputs(reduce="mean", **arguments)),
        "cpu_loop": time_cpu_loop(arguments, min(args.loop_pairs, args.pairs), "mean"),
    }


def time_once_ms(fn: Callable[[], Any]) -> float:
    """One timed call (for work long enough that launch gaps do not matter), in milliseconds."""
    _synchronize()
    start = time.perf_counter()
    fn()
    _synchronize()
    return (time.perf_counter() - start) * 1e3


def _synchronize() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _release_memory() -> None:
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def markdown(report: dict[str, Any]) -> str:
    """The report as markdown: headline table (one column per hidden size), sweep, checks, criteria."""
    ceilings, widths = report["ceilings"], report["widths"]
    lines = [f"## Sentence scoring on {report['device']} ({report['date']})", ""]
    if report["dry_run"]:
        lines += [
            "**DRY RUN on the CPU under the Triton interpreter: every timing below is meaningless.**",
            "",
        ]
    lines += [
        f"torch {report['torch']}, triton {report['triton']}, python {report['python']}; "
        f"nvidia-smi before: {report['gpu_state_before']}; after: {report['gpu_state_after']}; "
        f"seed {report['seed']}; batch {report['pairs']} pairs x {report['tokens']} tokens, bf16 hidden "
        "states.",
        "",
        f"Ceilings (measured): copy {ceilings['copy_gbps']:.0f} GB/s (bytes read + written, "
        f"{ceilings['copy_bytes'] / 2**30:.3g} GiB per copy); "
        f"bf16 8192^3 matmul {ceilings['bf16_tflops']:.0f} "
        "TFLOP/s.",
        "",
    ]
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("sentences", lambda w: f"{w['sentences']}"),
        (
            "hidden rows read / all rows",
            lambda w: f"{w['floors']['rows_read']} / {w['floors']['rows_total']}",
        ),
        ("bytes needed (MB)", lambda w: f"{w['floors']['bytes'] / 1e6:.1f}"),
        ("memory floor = bytes / copy BW (us)", lambda w: f"{w['floors']['memory_floor_us']:.1f}"),
        ("flop floor = 2*rows*H / bf16 peak (us)", lambda w: f"{w['floors']['compute_floor_us']:.2f}"),
        ("(a) kernel, mean / max / vote (us)", lambda w: _by_reduce(w["kernel_ms"])),
        ("achieved bandwidth, mean (GB/s)", lambda w: f"{_achieved_gbps(w):.0f}"),
        ("fraction of copy bandwidth", lambda w: f"{100 * _achieved_gbps(w) / ceilings['copy_gbps']:.1f}%"),
        ("(b) eager torch, mean / max / vote (us)", lambda w: _by_reduce(w["torch_ms"])),
        (
            "kernel speedup vs eager torch (mean)",
            lambda w: f"{w['torch_ms']['mean'] / w['kernel_ms']['mean']:.1f}x",
        ),
        ("(c) CPU per-sample loop, mean (ms, extrapolated)", _loop_cell),
        (
            "kernel speedup vs CPU loop",
            lambda w: f"{w['cpu_loop']['total_ms'] / w['kernel_ms']['mean']:.0f}x",
        ),
        (
            "(d) reduction only from float32 probabilities, kernel / torch, mean (us)",
            lambda w: f"{w['reduction_ms']['kernel'] * 1e3:.1f} / {w['reduction_ms']['torch'] * 1e3:.1f}",
        ),
        ("score_sentences call, validate off / on (us)", lambda w: _validate_cell(w["api_ms"])),
        (
            "encoder forward (ms)",
            lambda w: f"{w['encoder']['ms']:.1f}" if "ms" in w.get("encoder", {}) else "-",
        ),
        ("post-encoder share: loop / torch / kernel", _share_cell),
    ]
    lines += ["| | " + " | ".join(f"H = {w['hidden']}" for w in widths) + " |"]
    lines += ["|---|" + "---|" * len(widths)]
    lines += [f"| {name} | " + " | ".join(cell(w) for w in widths) + " |" for name, cell in rows]
    loop = widths[0]["cpu_loop"]
    lines += [
        "",
        "(a) = zero-filled workspace + 2 launches on prepared inputs, do_bench median; (d) the same for "
        "`reduce_sentences` on the torch path's probabilities. "
        f"(c) on {loop['cpu']}, timed on the first {loop['pairs_timed']} pairs and scaled linearly by "
        f"{loop['scale']:.0f}; it starts from float32 hidden states already in host memory (no "
        "device-to-host copy counted). Shares are post / (encoder forward + post) with a BERT-shaped "
        "encoder of the same width (random weights), not the pipeline's process().",
        "",
        "### Config sweep (reduce=mean; the first row is the default config, timed a second time)",
        "",
        "| H | block_tokens | block_hidden | warps | stages | segment_scan | us | GB/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for width in widths:
        for row in width["sweep"]:
            c = row["config"]
            gbps = width["floors"]["bytes"] / (row["ms"] * 1e-3) / 1e9
            lines.append(
                f"| {width['hidden']} | {c['block_tokens']} | {c['block_hidden']} | {c['num_warps']} "
                f"| {c['num_stages']} | {c['segment_scan']} | {row['ms'] * 1e3:.1f} | {gbps:.0f} |"
            )
    lines += [
        "",
        "### Correctness vs the float64 oracle (fresh random inputs, outputs poisoned before each run)",
        "",
        "| case | dtype | reduce | tokens | H | sentences | max abs err | rel err | decisions checked "
        "| mismatches | unwritten | repeat identical | = torch | reduction = torch bitwise | ok |",
        "|" + "---|" * 15,
    ]
    for check in report["checks"]:
        lines.append(
            f"| {check['label']} | {check['dtype']} | {check['reduce']} | {check['tokens']} "
            f"| {check['hidden']} | {check['sentences']} | {check['max_score_error']:.1e} "
            f"| {check['relative_score_error']:.1e} | {check['decisions_checked']} "
            f"| {check['decision_mismatches']} | {check['unwritten_scores']} | {check['repeat_identical']} "
            f"| {check['torch_decisions_agree']} | {check['reduction_identical']} "
            f"| {'yes' if check['ok'] else 'NO'} |"
        )
    lines += ["", f"### Done-when criteria ({report['pairs']} x {report['tokens']}, reduce=mean)", ""]
    for width in widths:
        kernel, eager = width["kernel_ms"]["mean"], width["torch_ms"]["mean"]
        loop_ms = width["cpu_loop"]["total_ms"]
        fraction = _achieved_gbps(width) / ceilings["copy_gbps"]
        encoder = width.get("encoder", {})
        share = (
            f"{100 * kernel / (encoder['ms'] + kernel):.2f}% of encoder + scoring (need <= 5%): "
            f"{_met(kernel / (encoder['ms'] + kernel) <= 0.05)}"
            if "ms" in encoder
            else "share not measured"
        )
        lines.append(
            f"- H={width['hidden']}: vs eager torch {eager / kernel:.1f}x (need >= 2): "
            f"{_met(eager / kernel >= 2)}; "
            f"vs CPU loop {loop_ms / kernel:.0f}x (need >= 100): {_met(loop_ms / kernel >= 100)}; "
            f"bandwidth {100 * fraction:.1f}% (need >= 60%): {_met(fraction >= 0.6)}; {share}"
        )
    passed = sum(check["ok"] for check in report["checks"])
    lines.append(f"- correctness: {passed}/{len(report['checks'])} checks ok")
    return "\n".join(lines) + "\n"


def _by_reduce(times_ms: dict[str, float]) -> str:
    return " / ".join(f"{times_ms[reduce] * 1e3:.1f}" for reduce in REDUCTIONS)


def _achieved_gbps(width: dict[str, Any]) -> float:
    return width["floors"]["bytes"] / (width["kernel_ms"]["mean"] * 1e-3) / 1e9


def _loop_cell(width: dict[str, Any]) -> str:
    loop = width["cpu_loop"]
    agree = "" if loop["decisions_agree"] else " (DECISIONS DIFFER from the oracle)"
    return (
        f"{loop['total_ms']:.0f} (projection {loop['projection_ms']:.0f} + reduction "
        f"{loop['reduction_ms']:.0f}){agree}"
    )


def _validate_cell(api_ms: dict[str, float]) -> str:
    return f"{api_ms['validate=False'] * 1e3:.1f} / {api_ms['validate=True'] * 1e3:.1f}"


def _share_cell(width: dict[str, Any]) -> str:
    encoder = width.get("encoder", {})
    if "ms" not in encoder:
        return encoder.get("error", "skipped")
    posts = (width["cpu_loop"]["total_ms"], width["torch_ms"]["mean"], width["kernel_ms"]["mean"])
    return " / ".join(f"{100 * post / (encoder['ms'] + post):.2f}%" for post in posts)


def _met(condition: bool) -> str:
    return "met" if condition else "NOT met"


def main() -> int:
    global DEVICE
    args = parse_args()
    if args.dry_run:
        if os.environ.get("TRITON_INTERPRET") != "1":
            print("--dry-run needs TRITON_INTERPRET=1 in the environment", file=sys.stderr)
            return 2
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        print("needs a CUDA device (and triton); --dry-run checks the script on the CPU", file=sys.stderr)
        return 2
    import triton

    seed = args.seed if args.seed is not None else time.time_ns() % (2**31)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if DEVICE == "cuda" else f"CPU ({_cpu_name()})",
        "dry_run": args.dry_run,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "gpu_state_before": gpu_state(),
        "seed": seed,
        "pairs": args.pairs,
        "tokens": args.tokens,
    }
    print(f"device {report['device']}; {report['gpu_state_before']}", flush=True)
    report["ceilings"] = measure_ceilings()
    print(f"ceilings {report['ceilings']}", flush=True)
    report["checks"] = small_cases(seed, max_pairs=200 if DEVICE == "cuda" else 5)
    print(f"small checks: {sum(c['ok'] for c in report['checks'])}/{len(report['checks'])} ok", flush=True)
    report["widths"] = []
    for index, width in enumerate(args.hidden):
        report["widths"].append(benchmark_width(args, width, seed + 1 + index, report["ceilings"]))
        report["checks"] += report["widths"][-1].pop("checks")
        print(f"H={width} done", flush=True)
    report["gpu_state_after"] = gpu_state()
    table = markdown(report)
    (args.out / "sentence_scoring.json").write_text(json.dumps(report, indent=2, default=str))
    (args.out / "sentence_scoring.md").write_text(table)
    print(table)
    return 0 if all(check["ok"] for check in report["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
