"""The Locust driver (issue #20) side by side with the in-process engine and plain Locust.

    python3 benchmarks/bench_locust_driver.py [--seconds 20] [--capacity-seconds 5] [--rounds 3]
        [--only omission|capacity|agreement|tallies|functions]

1. Coordinated omission: a loopback server that holds every request arriving in the first second
   of every five, driven open loop at 200 req/s. Analytic truth: 20% of requests wait a uniform
   (0, 1] s, so p90 = 0.5 s and p99 = 0.95 s. The in-process engine, the driver with 2 workers,
   and plain Locust (2 users at constant_throughput(100), FastHttpUser), which paces each user
   behind its slow replies.
2. Capacity: closed loop, 16 connections, the no-op loopback server, for each of the in-process
   engine, the driver with 1 and 2 workers, and plain Locust (16 FastHttpUsers, no wait).
3. Agreement at a rate all can carry (open loop 300 req/s; plain Locust paced at 300/s, its
   exact response times kept by a listener; and one worker sending a 2-worker share, 150/s, with
   the engine at 150/s beside it):
   p50, p90 and p99 with their intervals, in rounds (every other one backwards), the median p50
   of each configuration over the rounds with its ratio to the engine's, and each percentile's
   ratio to the same round's engine. The engine runs twice a round: its second run is the
   control (how well the engine agrees with itself on this machine).
4. Tallies against records: one 2-worker run shipping both; the Result read from each.
5. A function on the local Lambda platform, in process and through the driver.

Client and server share this machine's cores: figures are ratios within one run. The server runs
in a process of its own (``python -m tests.loopback``), so that no client shares its interpreter
lock.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_servebench.backends.http import HttpTarget  # noqa: E402
from pytest_servebench.fixture import Servebench  # noqa: E402
from pytest_servebench.settings import Settings  # noqa: E402
from pytest_servebench.stats import Estimate, quantile_estimate  # noqa: E402
from pytest_servebench.workloads import ClosedLoop, OpenLoop  # noqa: E402
from tests.loopback import Behaviour  # noqa: E402


@contextlib.contextmanager
def served(behaviour: Behaviour | None = None) -> Iterator[str]:
    """A loopback server in a process of its own, so that no client shares its interpreter
    lock (the in-process engine would, with a server thread in this process); its URL."""
    knobs = {k: v for k, v in asdict(behaviour or Behaviour()).items() if k != "body"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.loopback", json.dumps(knobs)],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("the loopback server did not start")
        yield url
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ms(x: float) -> str:
    return f"{x * 1000:8.1f} ms"


def ours(url: str, workload: Any, *, driver: str, workers: int = 1) -> Any:
    bench = Servebench(target=HttpTarget(url), settings=Settings(driver=driver, workers=workers,
                                                                 timeout_s=10,
                                                                 time_limit_s=300))
    return bench.run(workload, payload=b"x")


def plain_locust(url: str, *, users: int, seconds: float, paced_per_user: float | None,
                 workdir: Path) -> dict[str, Any]:
    """Plain Locust (FastHttpUser) from its command line. Besides its own rounded statistics,
    a listener keeps every response time exactly as Locust measured it (``raw``, seconds)."""
    wait = (f"constant_throughput({paced_per_user})" if paced_per_user else "constant(0)")
    locustfile = workdir / "locustfile.py"
    raw_path = workdir / f"raw-{users}.txt"
    locustfile.write_text(textwrap.dedent(f"""
        from locust import FastHttpUser, constant, constant_throughput, events, task

        TIMES = []

        @events.request.add_listener
        def keep(response_time, exception, **kwargs):
            if exception is None:
                TIMES.append(response_time / 1000)

        @events.quitting.add_listener
        def dump(environment, **kwargs):
            with open({str(raw_path)!r}, "w") as f:
                f.write("\\n".join(map(repr, TIMES)))

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
    raw = sorted(float(x) for x in raw_path.read_text().split())
    return {"count": float(row["Request Count"]), "rps": float(row["Requests/s"]),
            "p50": float(row["50%"]) / 1000, "p90": float(row["90%"]) / 1000,
            "p99": float(row["99%"]) / 1000, "raw": raw}


def omission(seconds: float, workdir: Path) -> None:
    print(f"\n## Coordinated omission: 200 req/s open loop for {seconds:g} s, the server "
          "holds arrivals for the first 1 s of every 5 s")
    print("  analytic                              p90     500.0 ms   p99     950.0 ms")
    workload = OpenLoop(rate=200, duration=seconds, seed=7)
    behaviour = Behaviour(stall_from_s=0.0, stall_for_s=1.0, stall_every_s=5.0)
    for label, driver, workers in (("in-process engine", "inprocess", 1),
                                   ("locust driver, 2 workers", "locust", 2)):
        with served(behaviour) as url:
            r = ours(url, workload, driver=driver, workers=workers)
        p90, p99 = r.metric("p90"), r.p99
        print(f"  {label:<26} sent {r.count:6d}/{len(workload.schedule())}   p90 "
              f"{_ms(p90.value)} [{p90.low * 1000:.0f}, {p90.high * 1000:.0f}]   p99 "
              f"{_ms(p99.value)} [{p99.low * 1000:.0f}, {p99.high * 1000:.0f}]")
    with served(behaviour) as url:
        p = plain_locust(url, users=2, seconds=seconds, paced_per_user=100,
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
        with served() as url:
            r = ours(url, workload, driver=driver, workers=workers)
        rates[label] = r.throughput
        print(f"  {label:<26} {r.throughput:9,.0f} req/s   p50 {_ms(r.p50.value)}")
    with served() as url:
        p = plain_locust(url, users=16, seconds=seconds, paced_per_user=None,
                         workdir=workdir)
    rates["plain"] = p["rps"]
    print(f"  {'plain Locust (FastHttpUser)':<26} {p['rps']:9,.0f} req/s   p50 {_ms(p['p50'])}")
    base = rates["in-process engine"]
    for label in ("locust driver, 1 worker", "locust driver, 2 workers", "plain"):
        print(f"  {label} / in-process = {rates[label] / base:.2f}")


def _interval(e: Estimate) -> str:
    return f"{e.value * 1000:6.3f} [{e.low * 1000:.3f}, {e.high * 1000:.3f}]"


def agreement(seconds: float, repeats: int, workdir: Path) -> None:
    """Open loop at 300 req/s (plain Locust: 3 users paced at 100/s each, the nearest it
    has), each run on a fresh no-op loopback server; the runs of a round go one after another
    and the rounds repeat, so that the machine's drift falls on every configuration alike."""
    print(f"\n## Agreement: 300 req/s for {seconds:g} s, no-op loopback server, "
          f"{repeats} round(s); ms, [95% interval]")
    workload = OpenLoop(rate=300, duration=seconds, seed=3)
    # one worker's share of the 2-worker run, sent by a single worker: the same rate per
    # sending process, to tell what the second worker costs from what a sparser stream costs
    share = OpenLoop(rate=150, duration=seconds, seed=3)
    configs = (("in-process engine", "inprocess", 1), ("locust driver, 1 worker", "locust", 1),
               ("locust driver, 2 workers", "locust", 2),
               ("1 worker at 150/s (a share)", "locust", 1),
               # the engine at a worker's share: what a sparser stream costs any sender
               ("in-process engine at 150/s", "inprocess", 1),
               ("plain Locust (FastHttpUser)", "", 3),
               # The control: the engine against itself seconds later, on this shared machine.
               ("in-process engine, again", "inprocess", 1))
    p50s: dict[str, list[float]] = {label: [] for label, _, _ in configs}
    estimates: dict[str, list[tuple[Estimate, ...]]] = {label: [] for label, _, _ in configs}
    for k in range(repeats):
        # every other round runs backwards, so that a drift within a round (the second engine
        # run read slower than the first in most rounds of a forward-only bench) falls on
        # both ends alike
        for label, driver, workers in (configs if k % 2 == 0 else configs[::-1]):
            with served() as url:
                if driver:
                    r = ours(url, share if "150/s" in label else workload, driver=driver,
                             workers=workers)
                    n, sent = r.count, r.count
                    p50, p90, p99 = r.p50, r.metric("p90"), r.p99
                    lag = r.schedule_lag
                    note = (f"lag p50 {lag.p50_s * 1e3:.3f} ms, {lag.late} late"
                            if lag is not None else "")
                else:
                    p = plain_locust(url, users=workers, seconds=seconds,
                                     paced_per_user=100, workdir=workdir)
                    xs = p["raw"]
                    n, sent = len(xs), int(p["count"])
                    p50, p90, p99 = (quantile_estimate(xs, q) for q in (0.5, 0.9, 0.99))
                    note = (f"its CSV: p50 {p['p50'] * 1e3:g} p90 {p['p90'] * 1e3:g} p99 "
                            f"{p['p99'] * 1e3:g} ms (rounded)")
            p50s[label].append(p50.value)
            estimates[label].append((p50, p90, p99))
            print(f"  #{k + 1} {label:<28} n {n:5d}/{sent:5d}  p50 {_interval(p50)}  p90 "
                  f"{_interval(p90)}  p99 {_interval(p99)}  {note}")
    base = statistics.median(p50s["in-process engine"])
    print("  median p50 over the rounds, and its ratio to the in-process engine's:")
    for label, values in p50s.items():
        med = statistics.median(values)
        print(f"    {label:<28} {med * 1000:6.3f} ms  x{med / base:.2f}")
    # "Agree within their intervals": the 95% intervals of a percentile overlap. The engine
    # run twice in a round is the yardstick: intervals speak of sampling only, not of the
    # machine's drift between runs seconds apart, which a shared machine adds to both. A
    # worker's share (150/s) is set beside the engine at 150/s, the engine at 150/s beside
    # the engine at 300/s.
    def reference(label: str) -> str:
        at_150 = "in-process engine at 150/s"
        return at_150 if "150/s" in label and label != at_150 else "in-process engine"

    compared = [label for label in estimates if label != "in-process engine"]
    print("  rounds whose 95% interval overlaps the engine's (same round, same rate), per "
          "percentile:")
    for label in compared:
        rows, ref = estimates[label], estimates[reference(label)]
        counts = [sum(1 for mine, theirs in zip(rows, ref, strict=True)
                      if mine[i].low <= theirs[i].high and theirs[i].low <= mine[i].high)
                  for i in range(3)]
        print(f"    {label:<28} p50 {counts[0]}/{len(rows)}  p90 {counts[1]}/{len(rows)}  "
              f"p99 {counts[2]}/{len(rows)}  (vs {reference(label)})")
    # Between runs: each round's ratio to that round's engine, per percentile. The engine's
    # own ratio (its second run) is the spread that a shared machine puts between two runs of
    # the same driver; a configuration whose ratios fall inside that spread agrees as well as
    # the engine agrees with itself.
    print("  ratio to the same round's engine (same rate), per percentile: median [min, max]")
    for label in compared:
        rows, ref = estimates[label], estimates[reference(label)]
        cells = []
        for i, name in enumerate(("p50", "p90", "p99")):
            ratios = sorted(mine[i].value / theirs[i].value
                            for mine, theirs in zip(rows, ref, strict=True))
            cells.append(f"{name} x{statistics.median(ratios):.2f} "
                         f"[{ratios[0]:.2f}, {ratios[-1]:.2f}]")
        print(f"    {label:<28} " + "  ".join(cells))


def tallies(seconds: float) -> None:
    """One 2-worker run that ships both its tallies and its records: the Result read from
    each, and what each weighs on the wire."""
    from pytest_servebench.locust_driver import _drive, recording_from
    from pytest_servebench.locust_driver.tally import Tally, Window, result_from
    from pytest_servebench.result import summarize
    from pytest_servebench.target import Payload

    print(f"\n## Tallies against records: one run, 2 workers, 1000 req/s for {seconds:g} s, "
          "loopback server with 1 ms of service")
    workload = OpenLoop(rate=1000, duration=seconds, seed=4)
    with served(Behaviour(delay_s=0.001)) as url:
        data = _drive(HttpTarget(url), workload, [Payload(b"x")], workers=2, timeout_s=10,
                      time_limit_s=300, master_bind="127.0.0.1", master_port=None,
                      local_workers=None, csv_prefix=None, start_timeout_s=60,
                      late_threshold_s=0.005, records=True)
    done = list(data["done"].values())
    merged = result_from(Tally.from_json(data["tally"]), Window(*data["window"]), target="t",
                         target_profile={}, workload={}, scheduled=True,
                         started_unix_s=data["t0"], wall_s=max(d["wall_s"] for d in done),
                         max_in_flight=0, timeout_s=10)
    exact = summarize(recording_from(data, workload), target="t", target_profile={},
                      workload={}, timeout_s=10)
    print(f"  n {merged.count} (records {exact.count}); throughput {merged.throughput:.2f} "
          f"and {exact.throughput:.2f}/s; per-interval counts equal: "
          f"{merged.throughput_bins == exact.throughput_bins}")
    for name in ("p50", "p90", "p99", "p99.9", "mean"):
        m, e = merged.metric(name), exact.metric(name)
        print(f"  {name:6} tallies {_interval(m)}  records {_interval(e)}  "
              f"differ by {abs(m.value - e.value) / e.value:.2%}")
    print(f"  on the wire: tallies {len(json.dumps(data['tally'])):,} bytes, records "
          f"{len(json.dumps(data['rows'])):,} bytes")


def functions(seconds: float) -> None:
    """A function on the local Lambda platform (the tests' echo handler, 256 MB), in process
    and through the driver: Invoke API, SigV4, LogType=Tail, REPORT lines."""
    from pytest_servebench.backends.local.functions import ProcessLauncher
    from pytest_servebench.backends.local.processes import new_owner
    from pytest_servebench.backends.local.shaping import Shaper
    from pytest_servebench.functions.api import PlatformServer
    from pytest_servebench.functions.client import FunctionTarget
    from pytest_servebench.functions.platform import FunctionConfig

    print(f"\n## A function on the local platform: open loop 50/s for {seconds:g} s after 1 s "
          "of warm-up (its cold starts)")
    owner, shaper = new_owner(), Shaper()
    event = {"n": 1}
    with PlatformServer(lambda: ProcessLauncher(owner=owner, shaper=shaper),
                        reap_interval_s=0.1) as srv:
        srv.deploy(FunctionConfig(name="bench-echo", handler="tests.functions.handlers.echo",
                                  memory_mb=256, keep_alive_s=300,
                                  environment={"PYTHONPATH": str(ROOT)}))
        target = FunctionTarget(srv.endpoint_url, "bench-echo", name="lambda:bench-echo",
                                credentials=srv.credentials)
        workload = OpenLoop(rate=50, duration=seconds, seed=2, warmup=1)
        for label, driver, workers in (("in-process engine", "inprocess", 1),
                                       ("locust driver, 1 worker", "locust", 1),
                                       ("locust driver, 2 workers", "locust", 2),
                                       ("in-process engine again", "inprocess", 1)):
            bench = Servebench(target=target, settings=Settings(driver=driver, workers=workers,
                                                                timeout_s=30))
            r = bench.run(workload, payload=event)
            billed = r.billed_durations_s
            print(f"  {label:<26} n {r.count} ok {r.success_ratio:.3f}  p50 {_interval(r.p50)}"
                  f"  p99 {_interval(r.p99)}  billed mean "
                  f"{sum(billed) / max(1, len(billed)) * 1000:.2f} ms ({len(billed)} reports)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--capacity-seconds", type=float, default=5.0)
    parser.add_argument("--only", default=None,
                        choices=("omission", "capacity", "agreement", "tallies", "functions"))
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the agreement runs")
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "omission"):
            omission(args.seconds, Path(tmp))
        if args.only in (None, "capacity"):
            capacity(args.capacity_seconds, Path(tmp))
        if args.only in (None, "agreement"):
            agreement(args.seconds / 2, args.rounds, Path(tmp))
        if args.only in (None, "tallies"):
            tallies(args.seconds / 2)
        if args.only in (None, "functions"):
            functions(args.seconds / 2)
    print(f"\n(took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
