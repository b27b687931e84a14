"""Targets: in-process inference latency per model vs the HTTP app, side by side in one run.

    python benchmarks/bench_targets.py [--seconds 5] [--repeats 3]

1. Latency per model, in process: the raw runtime call (ONNX Runtime ``session.run`` or
   scikit-learn ``predict_proba``) at 1 and 2 threads, and the core's whole ``predict`` (decode,
   inference, post-processing): p50 over repeated calls.
2. ``mobilenet_v2`` throughput, interleaved repeats, medians: raw ONNX Runtime (2 threads, and
   two 1-thread calls at once), the core's ``predict`` in process, and the HTTP app (uvicorn,
   started by ``servebench serve``) driven by our load engine from the same machine, in two
   layouts: one inference at a time on 2 threads, and 2 inference slots of 1 thread each.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from pytest_servebench import ClosedLoop, HttpTarget, Servebench, Settings
from targets.build import ensure
from targets.core import Request, load_core
from targets.core.runtime import _ort_session
from targets.payloads import jpeg, texts
from targets.registry import get


def p50_ms(fn: Callable[[], object], n: int) -> float:
    for _ in range(max(2, n // 10)):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def raw_call(name: str, threads: int) -> Callable[[], object]:
    spec = get(name)
    art = ensure(spec.model, spec.runtime)
    if spec.runtime == "sklearn":
        core = load_core(name, threads=threads)
        pipe = core._pipe  # type: ignore[attr-defined]
        text = texts(1)[0]
        return lambda: pipe.predict_proba([text])
    sess = _ort_session(art.path, threads)
    if spec.kind == "text":
        from targets.core.tokenize import encode

        ids, mask = encode(texts(1)[0], 128, 30000)
        return lambda: sess.run(None, {"input_ids": ids, "attention_mask": mask})
    size = int(art.meta["input_size"])
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    return lambda: sess.run(None, {"input": x})


def latency_table(fast: bool) -> None:
    print("== in-process latency, p50 ms (raw runtime call | core.predict incl. decode/post) ==")
    print(f"{'target':<22}{'raw 1 thr':>11}{'raw 2 thr':>11}{'predict 1':>11}{'predict 2':>11}")
    for name in ("mobilenet_v2", "mobilenet_v2_torch", "ssdlite_mobilenet_v2", "ssd_resnet50",
                 "albert_base", "text_rf"):
        spec = get(name)
        n = 8 if name == "ssd_resnet50" or fast else 40
        row = []
        for threads in (1, 2):
            row.append(p50_ms(raw_call(name, threads), n) if spec.runtime != "torch"
                       else float("nan"))
        request = Request(text=texts(1)[0]) if spec.kind == "text" else Request(image=jpeg())
        for threads in (1, 2):
            core = load_core(name, threads=threads)
            row.append(p50_ms(lambda core=core, request=request: core.predict(request), n))
        print(f"{name:<22}" + "".join(f"{v:>11.2f}" for v in row))


def rate(fn: Callable[[], object], seconds: float, parallel: int = 1) -> float:
    for _ in range(5):
        fn()
    count = [0] * parallel
    stop = time.perf_counter() + seconds

    def loop(i: int) -> None:
        while time.perf_counter() < stop:
            fn()
            count[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(parallel)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(count) / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(threads: int, slots: int) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pytest_servebench.cli", "serve",
                             "mobilenet_v2", "--port", str(port), "--threads", str(threads),
                             "--slots", str(slots), "--log-level", "warning"])
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("server did not start")
        yield f"http://127.0.0.1:{port}/predict"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def http_rate(url: str, seconds: float) -> tuple[float, float]:
    """Best closed-loop throughput over concurrency 1, 2, 4 and its p50 latency."""
    sb = Servebench(target=HttpTarget(url, headers={"content-type": "image/jpeg"}),
                    settings=Settings(keep_records=False))
    best = (0.0, 0.0)
    for c in (1, 2, 4):
        r = sb.run(ClosedLoop(concurrency=c, duration=seconds, warmup=1.0), payload=jpeg())
        assert r.success_ratio == 1.0, r.errors
        if r.throughput > best[0]:
            best = (r.throughput, r.latency.p50.value * 1000)
    return best


def throughput(seconds: float, repeats: int) -> None:
    art = ensure("mobilenet_v2")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    s2, s1 = _ort_session(art.path, 2), _ort_session(art.path, 1)
    request = Request(image=jpeg())
    core2, core1x2 = load_core("mobilenet_v2", threads=2), load_core("mobilenet_v2", threads=1,
                                                                      slots=2)
    rows: dict[str, list[float]] = {}
    for i in range(repeats):
        print(f"  repeat {i + 1}/{repeats}", file=sys.stderr)
        rows.setdefault("raw ORT, 2 threads", []).append(
            rate(lambda: s2.run(None, {"input": x}), seconds))
        rows.setdefault("raw ORT, 2 calls x 1 thread", []).append(
            rate(lambda: s1.run(None, {"input": x}), seconds, parallel=2))
        rows.setdefault("core.predict, 2 threads", []).append(
            rate(lambda: core2.predict(request), seconds))
        rows.setdefault("core.predict, 2 slots x 1 thread", []).append(
            rate(lambda: core1x2.predict(request), seconds, parallel=2))
        for threads, slots in ((2, 1), (1, 2)):
            with serve(threads, slots) as url:
                tput, p50 = http_rate(url, seconds)
            key = f"HTTP app, {slots} slot(s) x {threads} thread(s)"
            rows.setdefault(key, []).append(tput)
            rows.setdefault(key + " p50 ms", []).append(p50)
    raw = statistics.median(rows["raw ORT, 2 threads"])
    print("== mobilenet_v2 throughput, inferences/s (median of repeats) ==")
    for key, vals in rows.items():
        med = statistics.median(vals)
        share = "" if key.endswith("ms") else f"  {med / raw:6.1%} of raw 2-thread"
        print(f"{key:<42}{med:9.1f}{share}   runs: {', '.join(f'{v:.1f}' for v in vals)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer latency samples")
    args = ap.parse_args()
    os.environ.setdefault("SERVEBENCH_ORT_SPIN", "1")
    latency_table(args.quick)
    throughput(args.seconds, args.repeats)


if __name__ == "__main__":
    main()
