"""Compile the token-pass kernel for Hopper (sm_90a) without a GPU and report what the compiler made of it.

    python kernels/inspect_sentence_scoring.py [--hidden 384] [--dtype bf16]

For each launch configuration the benchmark sweeps: registers per thread, spill bytes, shared memory,
and the memory instructions in the SASS (are the hidden-state loads 16 bytes wide, how many atomics).
Uses Triton's own ``ptxas`` and ``cuobjdump``; needs only the triton package, no driver.  Argument
divisibility is declared as the JIT would find it for 16-aligned tensors and strides.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import triton  # noqa: E402
from bench_sentence_scoring import sweep_candidates  # noqa: E402  (beside this script)
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from ragprune.kernels import REDUCTIONS  # noqa: E402
from ragprune.kernels.triton_backend import KernelConfig, _token_pass_kernel  # noqa: E402

TOOLS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
POINTERS = {
    "hidden_ptr": None,  # filled in from --dtype
    "weight_ptr": "*fp32",
    "bias_ptr": "*fp32",
    "probability_ptr": "*fp32",
    "sentence_ptr": "*i32",
    "pair_ptr": "*i64",
    "threshold_ptr": "*fp32",
    "value_ptr": "*i64",
    "count_ptr": "*i64",
}
SCALARS = {"row_stride": "i32", "bias_value": "fp32", "threshold_value": "fp32"}
SIZES = {"N": "i32", "H": "i32", "S": "i32"}
INSTRUCTIONS = re.compile(r"\b((?:LDG|STG|RED|ATOM|LDL|STL|LDGSTS)[A-Z0-9.]*)")


def compile_report(config: KernelConfig, hidden: int, dtype: str, reduce: str) -> dict[str, object]:
    signature = {**POINTERS, "hidden_ptr": f"*{dtype}", **SCALARS, **SIZES}
    constants = {
        "REDUCE": REDUCTIONS.index(reduce),
        "PROBABILITIES": False,
        "BIAS_MODE": 0,
        "THRESHOLD_MODE": 2,
        "SEGMENT_SCAN": config.segment_scan,
        "BLOCK_T": config.block_tokens,
        "BLOCK_H": config.block_hidden,
        "EVEN_H": hidden % config.block_hidden == 0,
    }
    names = _token_pass_kernel.arg_names
    aligned = [*POINTERS, *(["row_stride", "H"] if hidden % 16 == 0 else [])]
    source = ASTSource(
        fn=_token_pass_kernel,
        signature={**signature, **dict.fromkeys(constants, "constexpr")},
        constexprs=constants,
        attrs={(names.index(name),): [["tt.divisibility", 16]] for name in aligned},
    )
    kernel = triton.compile(
        source,
        target=GPUTarget("cuda", 90, 32),
        options={"num_warps": config.num_warps, "num_stages": config.num_stages},
    )
    with tempfile.TemporaryDirectory() as folder:
        ptx, cubin = Path(folder) / "kernel.ptx", Path(folder) / "kernel.cubin"
        ptx.write_text(kernel.asm["ptx"])
        verbose = _run([str(TOOLS / "ptxas"), "-v", "-arch=sm_90a", str(ptx), "-o", str(cubin)])
        sass = _run([str(TOOLS / "cuobjdump"), "--dump-sass", str(cubin)])
    return {
        "registers": int(re.search(r"Used (\d+) registers", verbose).group(1)),
        "spill_bytes": int(re.search(r"(\d+) bytes spill stores", verbose).group(1)),
        "shared_bytes": kernel.metadata.shared,
        "memory_instructions": dict(sorted(collections.Counter(INSTRUCTIONS.findall(sass)).items())),
    }


def _run(command: list[str]) -> str:
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return completed.stdout + completed.stderr


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, nargs="+", default=[384, 1024])
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--reduce", default="mean", choices=REDUCTIONS)
    args = parser.parse_args()
    print(f"triton {triton.__version__}, target sm_90a, {args.dtype} hidden states, reduce={args.reduce}")
    print(
        "| H | block_tokens | block_hidden | warps | stages | segment_scan | registers | spill B | shared B "
        "| SASS memory ops |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for hidden in args.hidden:
        for config in sweep_candidates(hidden):
            report = compile_report(config, hidden, args.dtype, args.reduce)
            ops = ", ".join(f"{name} x{count}" for name, count in report["memory_instructions"].items())
            print(
                f"| {hidden} | {config.block_tokens} | {config.block_hidden} | {config.num_warps} "
                f"| {config.num_stages} "
                f"| {config.segment_scan} | {report['registers']} | {report['spill_bytes']} "
                f"| {report['shared_bytes']} | {ops} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
