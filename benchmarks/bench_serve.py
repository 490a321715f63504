"""Latency and throughput of ``python -m stages.serve`` for one clip, over real HTTP on 127.0.0.1.

    python benchmarks/bench_serve.py --models models --clip clip.wav [--requests 100] [--concurrency 1 8 32]
    python benchmarks/bench_serve.py --models models models.onnx models.onnx --precision fp32 fp32 int8 --clip clip.wav

Starts the server (the same command a user runs), waits for ``/health``, warms it with 3 requests, then for
each concurrency level sends ``--requests`` uploads of ``--clip`` from that many client threads and prints
p50 / p95 latency (upload to answer) and requests per second. The first level, 1, is the latency of a
request alone; higher levels show what batching concurrent requests buys. Several ``--models`` (folders or
exported bundles, each with its ``--precision``) are served one after the other in the same run. Client and
server share the machine's cores: on 2 cores read the figures as a lower bound of a dedicated server's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from http_server import stages_serve  # noqa: E402


def one(url: str, data: bytes, name: str) -> float:
    start = time.perf_counter()
    response = requests.post(f"{url}/predict", files={"file": (name, data)}, timeout=600)
    if response.status_code != 200:
        raise SystemExit(f"HTTP {response.status_code}: {response.text}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, nargs="+", required=True, help="trained models folders or bundles")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "int8"],
                    help="per --models entry (one value: for all); int8 needs an exported bundle")
    ap.add_argument("--clip", type=Path, required=True, help="the audio file every request uploads")
    ap.add_argument("--requests", type=int, default=100, help="requests per concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = ap.parse_args()
    precisions = args.precision * len(args.models) if len(args.precision) == 1 else args.precision
    if len(precisions) != len(args.models):
        ap.error(f"--precision: give one value, or one per --models entry ({len(args.models)})")
    for models, precision in zip(args.models, precisions):
        serve(models, precision, args)


def serve(models: Path, precision: str, args: argparse.Namespace) -> None:
    data, info = args.clip.read_bytes(), sf.info(str(args.clip))
    log = Path(tempfile.mkdtemp(prefix="bench-serve-")) / "server.log"
    with stages_serve(models, log, "--max-pending", "1024", "--precision", precision, start_seconds=300) as url:
        for _ in range(3):
            one(url, data, args.clip.name)
        card = requests.get(f"{url}/model", timeout=10).json()
        print(f"{models} ({precision}): {card['classifier']} on {card['identity'].get('extractor')}; clip "
              f"{args.clip.name}, {info.duration:.2f} s\n| concurrent clients | requests | p50 latency (s) | "
              "p95 latency (s) | requests/s | audio s/s |\n|---|---|---|---|---|---|", flush=True)
        for clients in args.concurrency:
            before = requests.get(f"{url}/health", timeout=10).json()["batches"]
            start_time = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                latency = np.array(list(pool.map(lambda _: one(url, data, args.clip.name), range(args.requests))))
            wall = time.perf_counter() - start_time
            batches = requests.get(f"{url}/health", timeout=10).json()["batches"] - before
            print(f"| {clients} | {args.requests} ({batches} batches) | {np.percentile(latency, 50):.3f} | "
                  f"{np.percentile(latency, 95):.3f} | {args.requests / wall:.1f} | "
                  f"{args.requests * info.duration / wall:.1f} |", flush=True)

if __name__ == "__main__":
    main()
