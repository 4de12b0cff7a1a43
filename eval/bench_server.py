"""Load benchmark of ``ragprune serve`` over loopback: requests/s and p50/p99 latency per concurrency.

Starts the server as a subprocess on 127.0.0.1 (a free port), then, for each endpoint and each
concurrency level, keeps that many requests in flight until ``--requests`` have completed or
``--seconds`` have passed, whichever comes first. Every request is one query with ``--docs`` passages
taken in rotation from the MS MARCO toy training triples under the data root (``$RAGPRUNE_DATA``).
Prints a markdown table naming the hardware; ``--output`` also writes the rows as JSON.

    .venv/bin/python eval/bench_server.py [--model PATH] [--device cpu|cuda] [--docs 20]
        [--concurrency 1 8 32] [--requests 300] [--seconds 20] [--output results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

from ragprune.data import data_root
from ragprune.devices import cpu_name, describe_hardware

SERVER_START_TIMEOUT_S = 180.0
WARMUP_REQUESTS = 5


@dataclass(frozen=True)
class LevelResult:
    endpoint: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests_per_batch: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default=None, help="model folder (default: the model shipped with ragprune)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--docs", type=int, default=20, help="passages per request (default 20)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 8, 32], help="levels (default 1 8 32)"
    )
    parser.add_argument("--endpoints", nargs="+", default=["rerank", "prune"], choices=["rerank", "prune"])
    parser.add_argument("--requests", type=int, default=300, help="most requests per level (default 300)")
    parser.add_argument("--seconds", type=float, default=20.0, help="most seconds per level (default 20)")
    parser.add_argument("--max-batch-size", type=int, default=None, help="passed to ragprune serve")
    parser.add_argument("--output", default=None, help="also write the results as JSON here")
    return parser.parse_args()


def load_passages(root: Path) -> tuple[list[str], list[str]]:
    """Queries and distinct passages of the MS MARCO toy training triples (query, positive, negative)."""
    queries: dict[str, None] = {}
    passages: dict[str, None] = {}
    with open(root / "msmarco" / "triples.toy100.tsv", encoding="utf-8") as handle:
        for line in handle:
            query, *texts = line.rstrip("\n").split("\t")
            queries.setdefault(query, None)
            for text in texts:
                passages.setdefault(text, None)
    return list(queries), list(passages)


def payloads(queries: list[str], passages: list[str], docs: int, count: int) -> list[dict]:
    return [
        {
            "query": queries[i % len(queries)],
            "documents": [passages[(i * docs + j) % len(passages)] for j in range(docs)],
        }
        for i in range(count)
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    command = [sys.executable, "-c", "import sys; from ragprune.cli import main; sys.exit(main())", "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    for option, value in (
        ("--model", args.model),
        ("--device", args.device),
        ("--max-batch-size", args.max_batch_size),
    ):
        if value is not None:
            command += [option, str(value)]
    return subprocess.Popen(command)


def wait_until_healthy(url: str, server: subprocess.Popen) -> dict:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if server.poll() is not None:
            raise SystemExit(f"ragprune serve exited with status {server.returncode}")
        try:
            return httpx.get(f"{url}/health", timeout=5).json()
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"ragprune serve did not answer within {SERVER_START_TIMEOUT_S:.0f} s"
                ) from None
            time.sleep(0.5)


async def run_level(
    url: str, endpoint: str, concurrency: int, bodies: list[dict], seconds: float
) -> LevelResult:
    latencies: list[float] = []
    errors = 0
    next_index = 0
    before = httpx.get(f"{url}/health").json()["batching"]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal next_index, errors
            while next_index < len(bodies) and time.perf_counter() < deadline:
                body = bodies[next_index]
                next_index += 1
                sent = time.perf_counter()
                response = await client.post(f"/v1/{endpoint}", json=body)
                latencies.append(time.perf_counter() - sent)
                errors += response.status_code != 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    after = httpx.get(f"{url}/health").json()["batching"]
    batches = max(after["batches"] - before["batches"], 1)
    ms = np.asarray(latencies) * 1000
    return LevelResult(
        endpoint=f"/v1/{endpoint}",
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        seconds=round(elapsed, 2),
        requests_per_s=round(len(latencies) / elapsed, 1),
        p50_ms=round(float(np.percentile(ms, 50)), 1),
        p99_ms=round(float(np.percentile(ms, 99)), 1),
        requests_per_batch=round((after["requests"] - before["requests"]) / batches, 2),
    )


def hardware(device: str) -> str:
    described = f"CPU {cpu_name()} ({os.cpu_count()} logical cores), server device {device}"
    return f"{described} = {describe_hardware(device)}" if device.startswith("cuda") else described


def main() -> int:
    args = parse_args()
    queries, passages = load_passages(data_root())
    bodies = payloads(queries, passages, args.docs, args.requests)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(args, port)
    try:
        health = wait_until_healthy(url, server)
        rows = []
        for endpoint in args.endpoints:
            for body in bodies[:WARMUP_REQUESTS]:
                httpx.post(f"{url}/v1/{endpoint}", json=body, timeout=120).raise_for_status()
            for concurrency in args.concurrency:
                rows.append(asyncio.run(run_level(url, endpoint, concurrency, bodies, args.seconds)))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"\nragprune serve, model {health['model']}: {hardware(health['device'])}")
    print(
        f"{args.docs} passages per request (MS MARCO toy triples), at most {args.requests} requests or "
        f"{args.seconds:g} s per level, max batch {health['limits']['max_batch_size']} pairs, loopback HTTP\n"
    )
    print("| endpoint | concurrency | requests | errors | requests/s | p50 ms | p99 ms | requests/batch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        cells = [row.endpoint, row.concurrency, row.requests, row.errors, row.requests_per_s, row.p50_ms]
        print("| " + " | ".join(str(cell) for cell in [*cells, row.p99_ms, row.requests_per_batch]) + " |")
    if args.output:
        record = {"hardware": hardware(health["device"]), "model": health["model"], "docs": args.docs}
        record["rows"] = [asdict(r) for r in rows]
        Path(args.output).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 1 if any(r.errors for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
