"""Load-engine benchmarks: capacity, open-loop accuracy and overhead, side by side in one run.

    apt-get install -y wrk nginx-light   # the reference load generator and a no-op server
    python benchmarks/bench_engine.py [--seconds 5] [--repeats 3]

Every figure is a median over interleaved repeats (machines are shared and noisy); ratios are
taken within one run. The server is nginx answering ``200 ok`` on loopback with one worker, so
that on a 2-core machine the client and the server each have a core.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_servebench import ClosedLoop, HttpTarget, OpenLoop, Servebench, Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def nginx_noop(workdir: Path) -> Iterator[str]:
    if not shutil.which("nginx"):
        sys.exit("nginx not found: apt-get install -y nginx-light")
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(textwrap.dedent(f"""
        worker_processes 1;
        daemon off;
        pid {workdir}/nginx.pid;
        error_log {workdir}/error.log crit;
        events {{ worker_connections 4096; }}
        http {{
          access_log off;
          client_body_buffer_size 16k;
          server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }}
        }}
    """))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(workdir)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(10)


def ours_closed(url: str, concurrency: int, seconds: float) -> tuple[float, float]:
    sb = Servebench(target=HttpTarget(url), settings=Settings(keep_records=False))
    r = sb.run(ClosedLoop(concurrency=concurrency, duration=seconds, warmup=0.5), payload=b"x")
    assert r.success_ratio == 1.0, r.errors
    return r.throughput, r.latency.p50.value


def wrk(url: str, concurrency: int, seconds: float, workdir: Path) -> tuple[float, float]:
    script = workdir / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.body = "x"\n')
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{round(seconds)}s", "--latency", "-s",
         str(script), url],
        capture_output=True, text=True, check=True).stdout
    rps = float(next(line.split()[1] for line in out.splitlines()
                     if line.startswith("Requests/sec")))
    p50 = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("50%"))
    return rps, _wrk_time_s(p50)


def _wrk_time_s(text: str) -> float:
    for unit, scale in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    raise ValueError(text)


def locust(url: str, concurrency: int, seconds: float, workdir: Path) -> tuple[float, float]:
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(textwrap.dedent("""
        from locust import FastHttpUser, constant, task

        class NoOp(FastHttpUser):
            wait_time = constant(0)

            @task
            def post(self):
                self.client.post("/", data=b"x")
    """))
    prefix = workdir / "locust"
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u",
         str(concurrency), "-r", str(concurrency * 10), "-t", f"{round(seconds)}s",
         "-H", url.rstrip("/"),
         "--csv", str(prefix), "--only-summary", "--loglevel", "ERROR"],
        capture_output=True, text=True, check=True, timeout=seconds + 60)
    with open(f"{prefix}_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return float(row["Requests/s"]), float(row["50%"]) / 1000


def median_of(fn: Callable[[], tuple[float, float]], runs: list[tuple[float, float]]) -> None:
    runs.append(fn())


def capacity(url: str, seconds: float, repeats: int, workdir: Path) -> None:
    print("\n## Capacity: closed loop, 16 connections, no-op nginx (requests/s, median)")
    have_locust = subprocess.run([sys.executable, "-c", "import locust"],
                                 capture_output=True).returncode == 0
    results: dict[str, list[tuple[float, float]]] = {"servebench": [], "wrk": [], "locust": []}
    for _ in range(repeats):
        median_of(lambda: ours_closed(url, 16, seconds), results["servebench"])
        median_of(lambda: wrk(url, 16, seconds, workdir), results["wrk"])
        if have_locust:
            median_of(lambda: locust(url, 16, seconds, workdir), results["locust"])
    med = {k: statistics.median(r[0] for r in v) for k, v in results.items() if v}
    for k, v in med.items():
        print(f"  {k:<11} {v:>10,.0f} req/s   runs: "
              + ", ".join(f"{r[0]:,.0f}" for r in results[k]))
    if "locust" in med:
        print(f"  servebench / locust = {med['servebench'] / med['locust']:.2f}x  (goal >= 2x)")
    print(f"  servebench / wrk    = {med['servebench'] / med['wrk']:.2f}x")


def overhead(url: str, seconds: float, repeats: int, workdir: Path) -> None:
    print("\n## Overhead: p50 latency at concurrency 1 on the same no-op server")
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(ours_closed(url, 1, seconds)[1])
        theirs.append(wrk(url, 1, seconds, workdir)[1])
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"  servebench p50 {a * 1e6:7.1f} us   wrk p50 {b * 1e6:7.1f} us   "
          f"difference {(a - b) * 1e3:+.3f} ms  (goal within 0.2 ms)")


def open_loop(url: str, seconds: float, repeats: int) -> None:
    print("\n## Open-loop accuracy (median over repeats)")
    print("  rate     arrival   achieved     error    lag p50    lag p99    lag max   late>1ms")
    for rate in (1000, 5000):
        for arrival in ("constant", "poisson"):
            rows = []
            for seed in range(repeats):
                w = OpenLoop(rate=rate, duration=seconds, arrival=arrival, seed=seed)  # type: ignore[arg-type]
                sb = Servebench(target=HttpTarget(url))
                r = sb.run(w, payload=b"x")
                assert r.success_ratio == 1.0, r.errors
                sent = sorted(rec.sent_s for rec in r.records)
                scheduled = len(w.schedule())
                # Achieved rate: requests actually sent per second of the sending window,
                # against what the schedule itself holds over the same window.
                achieved = (len(sent) - 1) / (sent[-1] - sent[0])
                expected = (scheduled - 1) / (w.schedule()[-1] - w.schedule()[0])
                lag = r.schedule_lag
                assert lag is not None
                rows.append((achieved, achieved / expected - 1, lag.p50_s, lag.p99_s, lag.max_s,
                             lag.late / r.count))
            m = [statistics.median(col) for col in zip(*rows, strict=True)]
            print(f"  {rate:>5}/s  {arrival:<8} {m[0]:>8.1f}/s {m[1]:>+8.3%}  {m[2] * 1e6:7.1f}us "
                  f"{m[3] * 1e6:8.1f}us {m[4] * 1e3:8.2f}ms  {m[5]:8.3%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk")
    with tempfile.TemporaryDirectory() as tmp, nginx_noop(Path(tmp)) as url:
        print(f"no-op server: nginx at {url} (1 worker); client and server share "
              f"{len(__import__('os').sched_getaffinity(0))} cores")
        capacity(url, args.seconds, args.repeats, Path(tmp))
        overhead(url, args.seconds, args.repeats, Path(tmp))
        open_loop(url, args.seconds, args.repeats)


if __name__ == "__main__":
    main()
