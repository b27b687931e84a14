"""Targets: in-process inference latency per model vs the HTTP app, side by side in one run.

    python benchmarks/bench_targets.py [--seconds 5] [--repeats 3] [--skip-latency]
                                       [--baseline-tree DIR]

1. Latency per model, in process: the raw runtime call (ONNX Runtime ``session.run`` or
   scikit-learn ``predict_proba``) at 1 and 2 threads, and the core's whole ``predict`` (decode,
   inference, post-processing): p50 over repeated calls (ORT's intra-op spinning on, its
   default).
2. ``mobilenet_v2`` throughput, every path in turn within each repeat, medians: raw ONNX Runtime
   (2 threads, and two 1-thread calls at once; ORT's defaults), the core's ``predict`` in
   process, and the HTTP app (uvicorn, started by ``servebench serve``, with its own defaults)
   driven by our load engine from the same machine, in two layouts: one inference at a time on
   2 threads, and 2 inference slots of 1 thread each. Each path's CPU per call is read from
   ``getrusage`` and, for the server, from /proc by thread (event loop, workers) with the
   client's own. ``--baseline-tree DIR`` adds the HTTP app of another checkout (before/after).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

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


def cpu_s() -> float:
    """CPU seconds of this process (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proc_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of process ``pid`` by thread: its main thread (uvicorn's event loop) and
    the others (the thread pool: decode and inference), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"event loop": 0.0, "workers": 0.0}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended
            continue
        fields = raw.rsplit(")", 1)[1].split()
        out["event loop" if tid == str(pid) else "workers"] += \
            (int(fields[11]) + int(fields[12])) / tick
    return out


@dataclass(frozen=True)
class Rate:
    per_s: float
    cpu_ms: float  # CPU per call or request, all of this process's (or the server's) threads
    detail: dict[str, float] = field(default_factory=dict)  # ms per request by part


def rate(fn: Callable[[], object], seconds: float, parallel: int = 1) -> Rate:
    for _ in range(5):
        fn()
    count = [0] * parallel
    stop = time.perf_counter() + seconds

    def loop(i: int) -> None:
        while time.perf_counter() < stop:
            fn()
            count[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(parallel)]
    cpu0, started = cpu_s(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = sum(count)
    return Rate(n / (time.perf_counter() - started), (cpu_s() - cpu0) * 1000 / n)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@contextmanager
def spinning(value: str) -> Iterator[None]:
    """ORT sessions made inside take ``SERVEBENCH_ORT_SPIN=value``."""
    before = os.environ.get("SERVEBENCH_ORT_SPIN")
    os.environ["SERVEBENCH_ORT_SPIN"] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ["SERVEBENCH_ORT_SPIN"]
        else:
            os.environ["SERVEBENCH_ORT_SPIN"] = before


@contextmanager
def serve(threads: int, slots: int, *, tree: str | None = None) -> Iterator[Server]:
    """``servebench serve mobilenet_v2`` with the app's own defaults (from ``tree``, another
    checkout, when given)."""
    port = free_port()
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join([tree, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.Popen([sys.executable, "-m", "pytest_servebench.cli", "serve",
                             "mobilenet_v2", "--port", str(port), "--threads", str(threads),
                             "--slots", str(slots), "--log-level", "warning"],
                            env=env, cwd=tree or None)
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
        yield Server(f"http://127.0.0.1:{port}/predict", proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def http_rate(server: Server, seconds: float, concurrency: int = 4) -> tuple[Rate, float]:
    """Closed-loop throughput at ``concurrency`` (our load engine, in this process; 4 keeps two
    inference slots busy with two requests queued), its p50 latency in ms, and CPU per
    request: the server's by thread, and the client's."""
    sb = Servebench(target=HttpTarget(server.url, headers={"content-type": "image/jpeg"}),
                    settings=Settings(keep_records=False))
    sb.run(ClosedLoop(concurrency=concurrency, duration=0.3), payload=jpeg())  # warm up
    s0, c0 = proc_cpu_s(server.pid), cpu_s()
    r = sb.run(ClosedLoop(concurrency=concurrency, duration=seconds, warmup=0.0),
               payload=jpeg())
    s1, c1 = proc_cpu_s(server.pid), cpu_s()
    assert r.success_ratio == 1.0, r.errors
    detail = {k: (s1[k] - s0[k]) * 1000 / r.count for k in s0}
    detail["client"] = (c1 - c0) * 1000 / r.count
    return (Rate(r.throughput, sum(v for k, v in detail.items() if k != "client"), detail),
            r.latency.p50.value * 1000)


def throughput(seconds: float, repeats: int, baseline_tree: str | None) -> None:
    """Raw ONNX Runtime, the core in process and the HTTP app, in turn within each repeat (the
    servers stay up across repeats), so a busy machine slows all of them alike."""
    art = ensure("mobilenet_v2")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    with spinning("1"):  # raw means ONNX Runtime's own defaults
        s2, s1 = _ort_session(art.path, 2), _ort_session(art.path, 1)
    request = Request(image=jpeg())
    core2, core1x2 = load_core("mobilenet_v2", threads=2), load_core("mobilenet_v2", threads=1,
                                                                      slots=2)
    rows: dict[str, list[Rate]] = {}
    p50s: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        servers = [(stack.enter_context(serve(1, 2)), "HTTP app, 2 slots x 1 thread"),
                   (stack.enter_context(serve(2, 1)), "HTTP app, 1 slot x 2 threads")]
        if baseline_tree:
            servers.append((stack.enter_context(serve(1, 2, tree=baseline_tree)),
                            "HTTP app of the baseline tree, 2 x 1"))
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
            for server, key in servers:
                r, p50 = http_rate(server, seconds)
                rows.setdefault(key, []).append(r)
                p50s.setdefault(key, []).append(p50)
    raw = [r.per_s for r in rows["raw ORT, 2 threads"]]
    best = [r.per_s for r in rows["raw ORT, 2 calls x 1 thread"]]
    print("== mobilenet_v2 throughput, inferences/s: medians over repeats; each ratio is taken "
          "within a repeat (raw 2 thr: ONNX Runtime on 2 threads; raw 2x1: two 1-thread calls "
          "at once), then its median ==")
    print(f"{'path':<38}{'median':>8}{'/raw 2thr':>10}{'/raw 2x1':>9}{'cpu ms':>8}"
          "   runs (ratio to raw 2 thr)")
    for key, rates in rows.items():
        med = statistics.median(r.per_s for r in rates)
        ratio = statistics.median(r.per_s / base for r, base in zip(rates, raw, strict=True))
        ratio_best = statistics.median(r.per_s / b for r, b in zip(rates, best, strict=True))
        cpu = statistics.median(r.cpu_ms for r in rates)
        runs = ", ".join(f"{r.per_s:.0f} ({r.per_s / base:.0%})"
                         for r, base in zip(rates, raw, strict=True))
        print(f"{key:<38}{med:8.1f}{ratio:10.1%}{ratio_best:9.1%}{cpu:8.2f}   {runs}")
        if rates[0].detail:
            parts = {k: statistics.median(r.detail[k] for r in rates) for k in rates[0].detail}
            print(f"{'':<38}CPU per request, ms: " + ", ".join(f"{k} {v:.2f}"
                                                            for k, v in parts.items())
                  + f"; p50 {statistics.median(p50s[key]):.2f} ms")
    # CPU per call does not depend on what else the machine runs the way throughput does: it
    # says how much of the two cores' work is the model's own on an idle machine.
    one = statistics.median(r.cpu_ms for r in rows["raw ORT, 2 calls x 1 thread"])
    for key, rates in rows.items():
        if rates[0].detail:
            total = statistics.median(r.cpu_ms + r.detail["client"] for r in rates)
            print(f"CPU efficiency of {key}: raw 1-thread inference {one:.2f} ms / (server + "
                  f"client) {total:.2f} ms per request = {one / total:.1%}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer latency samples")
    ap.add_argument("--skip-latency", action="store_true", help="throughput only")
    ap.add_argument("--baseline-tree", default=None,
                    help="another checkout whose HTTP app runs beside this one's")
    args = ap.parse_args()
    if not args.skip_latency:
        with spinning("1"):
            latency_table(args.quick)
    throughput(args.seconds, args.repeats, args.baseline_tree)


if __name__ == "__main__":
    main()
