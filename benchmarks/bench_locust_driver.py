"""The Locust driver (issue #20) side by side with the in-process engine and plain Locust.

    python3 benchmarks/bench_locust_driver.py [--seconds 20] [--capacity-seconds 5]

1. Coordinated omission: a loopback server that holds every request arriving in the first second
   of every five, driven open loop at 200 req/s. Analytic truth: 20% of requests wait a uniform
   (0, 1] s, so p90 = 0.5 s and p99 = 0.95 s. The in-process engine, the driver with 2 workers,
   and plain Locust (2 users at constant_throughput(100), FastHttpUser), which paces each user
   behind its slow replies.
2. Capacity: closed loop, 16 connections, the no-op loopback server, for each of the in-process
   engine, the driver with 1 and 2 workers, and plain Locust (16 FastHttpUsers, no wait).
3. Agreement at a rate all can carry (open loop 300 req/s): p50 and p99 with their intervals.

Client and server share this machine's cores: figures are ratios within one run.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_servebench.backends.http import HttpTarget  # noqa: E402
from pytest_servebench.fixture import Servebench  # noqa: E402
from pytest_servebench.settings import Settings  # noqa: E402
from pytest_servebench.workloads import ClosedLoop, OpenLoop  # noqa: E402
from tests.loopback import Behaviour, LoopbackServer  # noqa: E402


def _ms(x: float) -> str:
    return f"{x * 1000:8.1f} ms"


def ours(url: str, workload: Any, *, driver: str, workers: int = 1) -> Any:
    bench = Servebench(target=HttpTarget(url), settings=Settings(driver=driver, workers=workers,
                                                                 timeout_s=10,
                                                                 time_limit_s=300))
    return bench.run(workload, payload=b"x")


def plain_locust(url: str, *, users: int, seconds: float, paced_per_user: float | None,
                 workdir: Path) -> dict[str, float]:
    wait = (f"constant_throughput({paced_per_user})" if paced_per_user else "constant(0)")
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(textwrap.dedent(f"""
        from locust import FastHttpUser, constant, constant_throughput, task

        class U(FastHttpUser):
            wait_time = {wait}

            @task
            def post(self):
                self.client.post("/predict", data=b"x")
    """))
    prefix = workdir / f"plain-{users}"
    subprocess.run([sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
                    "-u", str(users), "-r", str(users), "-t", f"{seconds:g}s",
                    "--host", url.rsplit("/predict", 1)[0], "--csv", str(prefix),
                    "--only-summary", "--loglevel", "ERROR"],
                   check=True, capture_output=True, timeout=seconds + 60)
    with open(f"{prefix}_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {"count": float(row["Request Count"]), "rps": float(row["Requests/s"]),
            "p50": float(row["50%"]) / 1000, "p90": float(row["90%"]) / 1000,
            "p99": float(row["99%"]) / 1000}


def omission(seconds: float, workdir: Path) -> None:
    print(f"\n## Coordinated omission: 200 req/s open loop for {seconds:g} s, the server "
          "holds arrivals for the first 1 s of every 5 s")
    print("  analytic                              p90     500.0 ms   p99     950.0 ms")
    workload = OpenLoop(rate=200, duration=seconds, seed=7)
    behaviour = Behaviour(stall_from_s=0.0, stall_for_s=1.0, stall_every_s=5.0)
    for label, driver, workers in (("in-process engine", "inprocess", 1),
                                   ("locust driver, 2 workers", "locust", 2)):
        with LoopbackServer(behaviour) as srv:
            r = ours(srv.url, workload, driver=driver, workers=workers)
        p90, p99 = r.metric("p90"), r.p99
        print(f"  {label:<26} sent {r.count:6d}/{len(workload.schedule())}   p90 "
              f"{_ms(p90.value)} [{p90.low * 1000:.0f}, {p90.high * 1000:.0f}]   p99 "
              f"{_ms(p99.value)} [{p99.low * 1000:.0f}, {p99.high * 1000:.0f}]")
    with LoopbackServer(behaviour) as srv:
        p = plain_locust(srv.url, users=2, seconds=seconds, paced_per_user=100,
                         workdir=workdir)
    print(f"  {'plain Locust (paced users)':<26} sent {int(p['count']):6d}/"
          f"{len(workload.schedule())}   p90 {_ms(p['p90'])}            p99 {_ms(p['p99'])}"
          "   (its own rounded statistics)")


def capacity(seconds: float, workdir: Path) -> None:
    print(f"\n## Capacity: closed loop, 16 connections, no-op loopback server, {seconds:g} s")
    workload = ClosedLoop(concurrency=16, duration=seconds)
    rates: dict[str, float] = {}
    for label, driver, workers in (("in-process engine", "inprocess", 1),
                                   ("locust driver, 1 worker", "locust", 1),
                                   ("locust driver, 2 workers", "locust", 2)):
        with LoopbackServer() as srv:
            r = ours(srv.url, workload, driver=driver, workers=workers)
        rates[label] = r.throughput
        print(f"  {label:<26} {r.throughput:9,.0f} req/s   p50 {_ms(r.p50.value)}")
    with LoopbackServer() as srv:
        p = plain_locust(srv.url, users=16, seconds=seconds, paced_per_user=None,
                         workdir=workdir)
    rates["plain"] = p["rps"]
    print(f"  {'plain Locust (FastHttpUser)':<26} {p['rps']:9,.0f} req/s   p50 {_ms(p['p50'])}")
    base = rates["in-process engine"]
    for label in ("locust driver, 1 worker", "locust driver, 2 workers", "plain"):
        print(f"  {label} / in-process = {rates[label] / base:.2f}")


def agreement(seconds: float) -> None:
    print(f"\n## Agreement: open loop 300 req/s for {seconds:g} s, no-op loopback server")
    workload = OpenLoop(rate=300, duration=seconds, seed=3)
    for label, driver, workers in (("in-process engine", "inprocess", 1),
                                   ("locust driver, 2 workers", "locust", 2)):
        with LoopbackServer() as srv:
            r = ours(srv.url, workload, driver=driver, workers=workers)
        print(f"  {label:<26} n {r.count:5d}  p50 {_ms(r.p50.value)} [{r.p50.low * 1000:.2f}, "
              f"{r.p50.high * 1000:.2f}]  p99 {_ms(r.p99.value)} [{r.p99.low * 1000:.2f}, "
              f"{r.p99.high * 1000:.2f}]")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--capacity-seconds", type=float, default=5.0)
    parser.add_argument("--only", choices=("omission", "capacity", "agreement"), default=None)
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "omission"):
            omission(args.seconds, Path(tmp))
        if args.only in (None, "capacity"):
            capacity(args.capacity_seconds, Path(tmp))
        if args.only in (None, "agreement"):
            agreement(args.seconds / 2)
    print(f"\n(took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
