"""The local Lambda platform: cold start vs the bare limit, warm overhead vs an in-process call,
parallel init, and a cold burst, side by side in one run.

    python3 benchmarks/bench_functions.py [--repeats 9] [--warm 300]

1. Cold start of the ``mobilenet_v2`` function (client-observed latency of an invocation that
   starts a sandbox: emulator start, runtime start, imports, model load, first inference, then
   the call itself) vs the bare limit on the same machine: a fresh python that imports numpy
   and onnxruntime, loads the model and runs one inference, timed until that inference is
   done. Interleaved, medians and their ratio. The function gets 3,538 MB (2 vCPU: the whole
   machine, so neither side is throttled); 1,769 MB (1 vCPU) is shown too.
2. Warm overhead: p50 of a warm invocation through the platform (Invoke API, emulator, runtime
   client) minus p50 of calling the same handler with the same event in process. Interleaved
   blocks.
3. Parallel init: cold-start Init Duration with ``parallel_init`` off and on, interleaved.
4. A cold burst: 16 concurrent invocations on a cold function (and with reserved concurrency 4).
5. CPU in proportion to memory: warm p50 and cold start per memory size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from pytest_servebench.backends.local import LocalBackend
from pytest_servebench.functions.client import FunctionTarget, InvokeClient, event_for
from pytest_servebench.target import Payload, Reply
from targets.build import ensure
from targets.payloads import jpeg

BARE = """
import sys, time
import numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
s.run(None, {"input": np.zeros((1, 3, 224, 224), np.float32)})
print("done", flush=True)
time.sleep(30)
"""


def bare_s(model: str) -> float:
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", BARE, model], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - t
    proc.kill()
    proc.wait()
    assert line.strip() == b"done"
    return elapsed


async def invoke(fn: FunctionTarget, payload: Payload, n: int = 1) -> list[tuple[float, Reply]]:
    client = InvokeClient(fn.endpoint_url, fn.function, credentials=fn.credentials)
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            reply = await client.send(payload, timeout_s=60)
            out.append((time.perf_counter() - t, reply))
            assert reply.ok, reply
    finally:
        await client.aclose()
    return out


async def burst(fn: FunctionTarget, payload: Payload, n: int) -> list[tuple[float, Reply]]:
    clients = [InvokeClient(fn.endpoint_url, fn.function, credentials=fn.credentials)
               for _ in range(n)]

    async def one(c: InvokeClient) -> tuple[float, Reply]:
        t = time.perf_counter()
        r = await c.send(payload, timeout_s=120)
        return time.perf_counter() - t, r

    try:
        return list(await asyncio.gather(*(one(c) for c in clients)))
    finally:
        for c in clients:
            await c.aclose()


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def row(label: str, ms: float, note: str = "") -> None:
    print(f"  {label:<58}{ms:8.2f} ms{note}")


def cold_once(be: LocalBackend, fn: FunctionTarget, payload: Payload) -> tuple[float, Reply]:
    be.force_cold(fn)
    time.sleep(0.3)  # let the retired sandboxes go, as between calls far apart
    (lat, reply), = asyncio.run(invoke(fn, payload))
    assert reply.cold_start, reply
    return lat, reply


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--warm", type=int, default=300)
    args = ap.parse_args()
    model = str(ensure("mobilenet_v2", "onnx").path)
    image = jpeg(224, 224, seed=1)
    payload = Payload(image, "image/jpeg")
    with LocalBackend() as be:
        print(f"shaping: {be.shaper.reason}; cores: {len(os.sched_getaffinity(0))}")
        full = be.function("mobilenet_v2", memory_mb=3538, name="mnv2-3538")
        one = be.function("mobilenet_v2", memory_mb=1769, name="mnv2-1769")

        # 1. cold start vs bare limit -----------------------------------------------------
        bare, cold_full, cold_one, inits = [], [], [], []
        phases: dict[str, list[float]] = {}
        bare_s(model)  # page cache warm for both sides
        for _ in range(args.repeats):
            bare.append(bare_s(model))
            lat, reply = cold_once(be, full, payload)
            cold_full.append(lat)
            inits.append(reply.init_duration_s or 0.0)
            for k, v in reply.extra.get("init_phases", {}).items():
                phases.setdefault(k, []).append(v)
            cold_one.append(cold_once(be, one, payload)[0])
        print(f"\n## 1. Cold start vs the bare limit (medians of {args.repeats}, interleaved)")
        row("bare python: import numpy+onnxruntime, load, 1 inference", med(bare) * 1000)
        row("cold invocation, 3538 MB (2 vCPU)", med(cold_full) * 1000,
            f"   ratio {med(cold_full) / med(bare):.2f}x  (goal <= 1.3x)")
        row("cold invocation, 1769 MB (1 vCPU)", med(cold_one) * 1000,
            f"   ratio {med(cold_one) / med(bare):.2f}x")
        row("Init Duration (REPORT), 3538 MB", med(inits) * 1000)
        print("  cold-start phases, 3538 MB (medians, ms):")
        for k in ("sandbox_start_s", "runtime_start_s", "runtime_client_s", "locate_s",
                  "import_s", "model_load_s", "first_inference_s", "handler_init_s"):
            if k in phases:
                print(f"    {k:<20} {med(phases[k])*1000:7.1f}")

        # 2. warm overhead ----------------------------------------------------------------
        os.environ.update({"SERVEBENCH_TARGET": "mobilenet_v2", "SERVEBENCH_MODEL_PATH": model,
                           "SERVEBENCH_THREADS": "2"})
        from targets import handler as h

        event = json.loads(event_for(payload).body)
        h.handler(event, None)
        platform_ms, inproc_ms = [], []
        asyncio.run(invoke(full, payload, 20))
        for _ in range(3):
            platform_ms += [t * 1000 for t, _ in asyncio.run(invoke(full, payload, args.warm))]
            for _ in range(args.warm):
                t = time.perf_counter()
                h.handler(event, None)
                inproc_ms.append((time.perf_counter() - t) * 1000)
        print(f"\n## 2. Warm invocation overhead (p50 of {len(platform_ms)} each, 3 interleaved "
              "blocks)")
        row("through the platform (Invoke API -> emulator -> runtime)", med(platform_ms))
        row("handler called in process", med(inproc_ms))
        row("overhead", med(platform_ms) - med(inproc_ms), "  (goal < 3 ms)")

        # 3. parallel init ----------------------------------------------------------------
        # Study 004's setup: the function downloads its model from S3 at init (moto's S3
        # server on loopback here); "Parallel 1" overlaps that download with the imports.
        seq = be.function("mobilenet_v2", memory_mb=3538, name="mnv2-s3", model_from="s3")
        par = be.function("mobilenet_v2", memory_mb=3538, name="mnv2-s3-par", model_from="s3",
                          parallel_init=True)
        runs: dict[str, dict[str, list[float]]] = {"seq": {}, "par": {}}
        for _ in range(args.repeats):
            for key, fn in (("seq", seq), ("par", par)):
                lat, r = cold_once(be, fn, payload)
                got = runs[key]
                got.setdefault("cold", []).append(lat)
                got.setdefault("init", []).append(r.init_duration_s or 0.0)
                for k, v in r.extra.get("init_phases", {}).items():
                    got.setdefault(k, []).append(v)
        seq_init, par_init = med(runs["seq"]["init"]), med(runs["par"]["init"])
        print(f"\n## 3. Parallel init, model downloaded from S3 at init (medians of "
              f"{args.repeats}, interleaved, 3538 MB)")
        print("  phase                      sequential   parallel")
        for k in ("storage_import_s", "import_s", "download_s", "download_wait_s",
                  "model_load_s", "first_inference_s", "init", "cold"):
            a, b = runs["seq"].get(k), runs["par"].get(k)
            print(f"  {k:<24} {med(a) * 1000 if a else float('nan'):9.1f}  "
                  f"{med(b) * 1000 if b else float('nan'):9.1f}  ms")
        print(f"  Init Duration cut by parallel init: {1 - par_init / seq_init:+.1%}  "
              "(study 004: 10.6% on AWS Lambda)")

        # 4. cold burst -------------------------------------------------------------------
        print("\n## 4. 16 concurrent invocations on a cold function")
        for reserved in (None, 4):
            fn = be.function("mobilenet_v2", memory_mb=1024, name=f"burst-{reserved}",
                             reserved_concurrency=reserved, keep_alive_s=2)
            t = time.perf_counter()
            res = asyncio.run(burst(fn, payload, 16))
            wall = time.perf_counter() - t
            ok = [r for _, r in res if r.ok]
            throttled = [r for _, r in res if r.error == "throttled"]
            sandboxes = {r.sandbox_id for r in ok}
            print(f"  reserved={reserved}: {len(ok)} ok, {len(throttled)} throttled, "
                  f"{len(sandboxes)} sandboxes, all cold: {all(r.cold_start for r in ok)}, "
                  f"wall {wall:.2f} s, cold latency p50 {med([t for t, r in res if r.ok]):.2f} s")
            gone = be.platform.wait_idle(fn.function, timeout_s=30)
            left = be.platform.state(fn.function)["sandboxes"]
            print(f"    after keep-alive (2 s): sandboxes left {left} (gone: {gone})")

        # 5. memory sizes -----------------------------------------------------------------
        print("\n## 5. CPU in proportion to memory (mobilenet_v2, 224x224 JPEG)")
        print("  memory   vCPU   warm p50   duration p50   cold start   max memory")
        for mb in (512, 1024, 1769, 3538):
            fn = be.function("mobilenet_v2", memory_mb=mb, name=f"size-{mb}")
            cold, _ = cold_once(be, fn, payload)
            warm = asyncio.run(invoke(fn, payload, 60))
            print(f"  {mb:5d} MB  {mb/1769:5.2f}  {med([t for t, _ in warm])*1000:7.1f} ms"
                  f"   {med([r.duration_s or 0 for _, r in warm])*1000:9.1f} ms"
                  f"   {cold*1000:7.0f} ms   {max(r.max_memory_mb or 0 for _, r in warm):6.0f} MB")


if __name__ == "__main__":
    main()
