"""How an open loop waits for its send times: a kernel timer (``SERVEBENCH_PACING=timer``, the
default) against the old sleep-and-spin (``spin``), side by side in one run.

    python3 benchmarks/bench_pacing.py [--seconds 6] [--rounds 4] [--rates 300,1000,3000]
        [--model-rate 40] [--no-model]

For each sender (the in-process engine; the Locust driver with one worker) and each mode, an
open loop at each of ``--rates`` req/s against a no-op loopback server in a process of its own,
and (unless ``--no-model``) at ``--model-rate`` req/s against MobileNetV2 on a local c5.large
server (the embedded default's EC2 stand-in, JPEG payloads): how late requests left (schedule
lag), latency from the intended send time (p50, p90, p99 with their 95% intervals) and the
sender's CPU use while it ran (CPU seconds per second). Rounds alternate their order. The spin
keeps a core busy while it waits; on a small machine that is a core the server under test would
have used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_locust_driver import served  # noqa: E402

from pytest_servebench.fixture import Servebench  # noqa: E402
from pytest_servebench.result import Result  # noqa: E402
from pytest_servebench.settings import Settings  # noqa: E402
from pytest_servebench.stats import Estimate  # noqa: E402
from pytest_servebench.target import Target  # noqa: E402
from pytest_servebench.workloads import OpenLoop  # noqa: E402

SENDERS = (("engine", "inprocess"), ("driver 1 worker", "locust"))
MODES = ("timer", "spin")


def _sender_cpu(driver: str) -> float:
    """CPU seconds so far of the process that sends: this one (the engine), or the driver's
    worker."""
    if driver == "inprocess":
        return time.process_time()
    import psutil  # type: ignore[import-untyped]

    total = 0.0
    for p in psutil.Process().children(recursive=True):
        try:
            if "locust_driver.runner worker" in " ".join(p.cmdline()):
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total


def run_once(target: Target, workload: OpenLoop, payload: Any, driver: str,
             mode: str) -> tuple[Result, float]:
    """One run, and its sender's CPU use while it ran (CPU seconds per second, between the
    first and the last progress snapshot: start-up and the statistics after are left out)."""
    os.environ["SERVEBENCH_PACING"] = mode
    samples: list[tuple[float, float]] = []

    def show(_: object) -> None:
        samples.append((time.perf_counter(), _sender_cpu(driver)))

    bench = Servebench(target=target,
                       settings=Settings(driver=driver, workers=1, timeout_s=10,
                                         time_limit_s=300),
                       progress=lambda _name: show)
    r = bench.run(workload, payload=payload)
    busy = [s for s in samples if s[1] > 0]
    if len(busy) < 2 or busy[-1][0] <= busy[0][0]:
        return r, float("nan")
    return r, (busy[-1][1] - busy[0][1]) / (busy[-1][0] - busy[0][0])


def _iv(e: Estimate) -> str:
    return f"{e.value * 1e3:7.3f} [{e.low * 1e3:.3f}, {e.high * 1e3:.3f}]"


def compare(label: str, target_of: Callable[[], Any], workload: OpenLoop, payload: Any,
            rounds: int) -> None:
    print(f"\n## {label}: open loop {workload.rate:g} req/s for {workload.duration:g} s, "
          f"{rounds} round(s); ms, [95% interval]", flush=True)
    configs = [(s, d, m) for s, d in SENDERS for m in MODES]
    rows: dict[tuple[str, str], list[tuple[Result, float]]] = {(s, m): [] for s, _, m in configs}
    for k in range(rounds):
        for sender, driver, mode in (configs if k % 2 == 0 else configs[::-1]):
            with target_of() as target:
                r, cpu = run_once(target, workload, payload, driver, mode)
            rows[(sender, mode)].append((r, cpu))
            lag = r.schedule_lag
            assert lag is not None
            print(f"  #{k + 1} {sender:<16} {mode:<5} n {r.count:5d} ok {r.success_ratio:.3f}  "
                  f"lag p50 {lag.p50_s * 1e3:.3f} p99 {lag.p99_s * 1e3:.3f} late {lag.late}  "
                  f"p50 {_iv(r.p50)}  "
                  f"p90 {_iv(r.metric('p90'))}  p99 {_iv(r.p99)}  cpu {cpu:.2f}", flush=True)
    print("  medians over the rounds (timer / spin within a sender):")
    for sender, _ in SENDERS:
        med: dict[str, dict[str, float]] = {}
        for mode in MODES:
            got = rows[(sender, mode)]
            med[mode] = {
                "lag50": statistics.median(r.schedule_lag.p50_s for r, _ in got
                                           if r.schedule_lag),
                "p50": statistics.median(r.p50.value for r, _ in got),
                "p90": statistics.median(r.metric("p90").value for r, _ in got),
                "p99": statistics.median(r.p99.value for r, _ in got),
                "cpu": statistics.median(c for _, c in got)}
        for mode in MODES:
            m = med[mode]
            print(f"    {sender:<16} {mode:<5} lag p50 {m['lag50'] * 1e3:.3f} ms  p50 "
                  f"{m['p50'] * 1e3:.3f}  p90 {m['p90'] * 1e3:.3f}  p99 {m['p99'] * 1e3:.3f} ms"
                  f"  cpu {m['cpu']:.2f}")
        t, s = med["timer"], med["spin"]
        print(f"    {sender:<16} timer/spin: p50 x{t['p50'] / s['p50']:.2f}  p90 "
              f"x{t['p90'] / s['p90']:.2f}  p99 x{t['p99'] / s['p99']:.2f}  cpu "
              f"x{t['cpu'] / s['cpu']:.2f}")


@contextmanager
def noop_target() -> Iterator[Target]:
    from pytest_servebench.backends.http import HttpTarget

    with served() as url:
        yield HttpTarget(url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--rates", default="300,1000,3000")
    ap.add_argument("--model-rate", type=float, default=40.0)
    ap.add_argument("--no-model", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    for rate in (float(x) for x in args.rates.split(",")):
        compare("No-op loopback server", noop_target,
                OpenLoop(rate=rate, duration=args.seconds, seed=3, warmup=0.5), b"x",
                args.rounds)
    if not args.no_model:
        from pytest_servebench.backends.local import LocalBackend
        from targets.payloads import jpeg

        with LocalBackend() as backend:
            server = backend.server("mobilenet_v2", platform="ec2", instance_type="c5.large")

            @contextmanager
            def model_target() -> Iterator[Target]:
                yield server

            compare("MobileNetV2 on a local c5.large server", model_target,
                    OpenLoop(rate=args.model_rate, duration=args.seconds, seed=5, warmup=0.5),
                    jpeg(), args.rounds)
    print(f"\n(took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
