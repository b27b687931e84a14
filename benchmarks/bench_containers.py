"""The container backend against the process backend, side by side in one run: cold start and
warm latency of the ``mobilenet_v2`` function at 512, 1,024 and 2,048 MB, and what a container
costs over a process (its start).

    python3 benchmarks/bench_containers.py [--repeats 5] [--warm 30]

Per repeat and memory size, both backends in turn: a forced cold invocation (client-observed
latency and the platform's Init Duration), then ``--warm`` warm invocations one at a time.
Printed: medians over repeats of the cold latency, the Init Duration, the warm p50; ratios
docker / process and 512 MB / 2,048 MB. Needs a Docker engine and the image (built on first use).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from pytest_servebench.backends.docker import DockerBackend
from pytest_servebench.backends.local import LocalBackend
from pytest_servebench.functions.client import FunctionTarget, InvokeClient, event_for
from pytest_servebench.target import Payload, Reply
from targets.payloads import jpeg

SIZES = (512, 1024, 2048)


async def _invoke(fn: FunctionTarget, payload: Payload, n: int) -> list[tuple[float, Reply]]:
    client = InvokeClient(fn.endpoint_url, fn.function, credentials=fn.credentials)
    event = event_for(payload)
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            reply = await client.send(event, timeout_s=60)
            out.append((time.perf_counter() - t, reply))
    finally:
        await client.aclose()
    return out


def measure(backend: Any, fn: FunctionTarget, payload: Payload, warm: int) -> dict[str, float]:
    backend.force_cold(fn)
    (cold_s, cold), *rest = asyncio.run(_invoke(fn, payload, 1 + warm))
    assert cold.ok and cold.cold_start, cold
    assert all(r.ok and r.cold_start is False for _, r in rest), rest[:2]
    return {"cold_ms": cold_s * 1000, "init_ms": (cold.init_duration_s or 0) * 1000,
            "warm_p50_ms": statistics.median(s for s, _ in rest) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warm", type=int, default=30)
    args = ap.parse_args()
    payload = Payload(jpeg(224, 224, seed=1), "image/jpeg")
    backends = {"process": LocalBackend(), "docker": DockerBackend()}
    try:
        t = time.perf_counter()
        image = backends["docker"].image("mobilenet_v2")
        print(f"image {image.tag} ({'built' if image.built else 'cached'}, "
              f"{time.perf_counter() - t:.1f} s)")
        fns = {(b, mb): be.function("mobilenet_v2", memory_mb=mb, name=f"bench-{b}-{mb}")
               for b, be in backends.items() for mb in SIZES}
        samples: dict[tuple[str, int], list[dict[str, float]]] = {k: [] for k in fns}
        for _ in range(args.repeats):
            for mb in SIZES:
                for b, be in backends.items():
                    samples[(b, mb)].append(measure(be, fns[(b, mb)], payload, args.warm))
        med = {k: {m: statistics.median(s[m] for s in v) for m in v[0]}
               for k, v in samples.items()}
        print(f"medians of {args.repeats} repeats, {args.warm} warm calls each")
        print(f"{'MB':>5} {'backend':>8} {'cold ms':>9} {'init ms':>9} {'warm p50':>9}")
        for mb in SIZES:
            for b in backends:
                m = med[(b, mb)]
                print(f"{mb:>5} {b:>8} {m['cold_ms']:9.1f} {m['init_ms']:9.1f} "
                      f"{m['warm_p50_ms']:9.2f}")
        for mb in SIZES:
            d, p = med[("docker", mb)], med[("process", mb)]
            print(f"{mb:>5} MB docker/process: cold {d['cold_ms'] / p['cold_ms']:.2f}x "
                  f"(+{d['cold_ms'] - p['cold_ms']:.0f} ms), warm "
                  f"{d['warm_p50_ms'] / p['warm_p50_ms']:.2f}x")
        for b in backends:
            lo, hi = med[(b, 512)], med[(b, 2048)]
            print(f"{b:>8} 512/2048 MB: cold {lo['cold_ms'] / hi['cold_ms']:.2f}x, warm "
                  f"{lo['warm_p50_ms'] / hi['warm_p50_ms']:.2f}x")
        print(json.dumps({f"{b}-{mb}": m for (b, mb), m in med.items()}))
    finally:
        for be in backends.values():
            be.close()
        left = backends["docker"].containers()
        print(f"containers left: {len(left)}")


if __name__ == "__main__":
    main()
