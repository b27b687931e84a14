"""How far the verdicts can be trusted: a simulation through the public summary and compare code
against known truth.

Latency is skewed on purpose (98% around 10 ms, 2% around 100 ms, both lognormal), runs may
differ from each other by a random factor (run-to-run noise, sd 5%), and samples are small (the
quick suites run 40 requests per warm case). Printed:

1. A/A: how often an unchanged target is called a regression, per metric (goal <= 5%), and how
   often each verdict comes out, with and without run-to-run noise, baselines ``last`` and
   ``median:5`` (a history of 5 earlier runs in both, so the noise floor can be measured).
2. Power: how often a 1.5x and a 2x p99 slowdown (the slow mode slower; and everything 2x),
   and a 20% mean slowdown (everything slower), are flagged, and how often they are wrongly called
   "unchanged" (must be 0), at n = 40, 200, 1000.
3. Coverage of every interval the project reports (p50, p90, p99, mean, throughput, success
   ratio) at n = 50, 200, 1000, and how often each is bounded at all; plus the mean's on the
   98/2 bimodal of the issue (5 ms / 200 ms).

    python3 benchmarks/bench_verdicts.py --trials 200
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_servebench.compare import compare_run, parse_thresholds
from pytest_servebench.engine import Record, Recording
from pytest_servebench.history import make_entry, new_run
from pytest_servebench.result import Result, summarize
from pytest_servebench.target import Reply

SPEC = "p50:10%,p99:10%,mean:10%,throughput:-5%,success_ratio:-0.01"
METRICS = ("p50", "p99", "mean", "throughput", "success_ratio")
ERROR_RATE = 0.002
TIMEOUT_S = 30.0


def latencies(rng: np.random.Generator, n: int, *, tail: float = 1.0, body: float = 1.0,
              run_factor: float = 1.0) -> np.ndarray:
    slow = rng.random(n) < 0.02
    fast_lat = rng.lognormal(math.log(0.010), 0.3, n) * body
    slow_lat = rng.lognormal(math.log(0.100), 0.3, n) * tail * body
    out: np.ndarray = np.where(slow, slow_lat, fast_lat) * run_factor
    return out


def run_result(xs: np.ndarray, rng: np.random.Generator) -> Result:
    """One closed-loop run at concurrency 1: each request starts when the last one ends."""
    rows = []
    t = 0.0
    for i, lat in enumerate(xs):
        ok = rng.random() >= ERROR_RATE
        reply = Reply(ok=True) if ok else Reply.failure("http_503", "busy")
        rows.append(Record(i, False, t, t, t + float(lat), reply))
        t += float(lat)
    rec = Recording(tuple(rows), 0.0, 0.0, t, t, 1, False)
    return summarize(rec, target="sim", target_profile={"kind": "sim"},
                     workload={"kind": "closed", "concurrency": 1, "requests": len(xs)},
                     timeout_s=TIMEOUT_S, keep_records=False)


def entry(rng: np.random.Generator, n: int, noise: float, **shape: float) -> dict[str, Any]:
    factor = float(rng.normal(1, noise)) if noise else 1.0
    return make_entry("sim::test", run_result(latencies(rng, n, run_factor=factor, **shape),
                                              rng), [], "local")


def verdicts(rng: np.random.Generator, n: int, noise: float, ref: str,
             **shape: float) -> dict[str, str]:
    history = [new_run([entry(rng, n, noise)], backend="local") for _ in range(5)]
    current = entry(rng, n, noise, **shape)
    cmp = compare_run([current], history, ref=ref, thresholds=parse_thresholds(SPEC))
    return {c.metric: c.verdict for c in cmp.changes}


def aa_table(trials: int, rng: np.random.Generator) -> None:
    print("\n1. A/A: an unchanged target re-run (share of comparisons per verdict)")
    print(f"{'noise':>6} {'ref':>9} {'n':>5}  " + "  ".join(f"{m:>22}" for m in METRICS))
    print(f"{'':>6} {'':>9} {'':>5}  " + "  ".join(f"{'regr/unch/inconcl':>22}"
                                                   for _ in METRICS))
    for noise in (0.0, 0.05):
        for ref in ("last", "median:5"):
            for n in (40, 200, 1000):
                counts: dict[str, Counter[str]] = {m: Counter() for m in METRICS}
                for _ in range(trials):
                    for metric, verdict in verdicts(rng, n, noise, ref).items():
                        counts[metric][verdict] += 1
                cells = []
                for m in METRICS:
                    c = counts[m]
                    total = max(1, sum(c.values()))
                    cells.append(f"{c['regression'] / total:6.1%} {c['unchanged'] / total:6.1%}"
                                 f" {c['inconclusive'] / total:6.1%}")
                print(f"{noise:>6.0%} {ref:>9} {n:>5}  " + "  ".join(f"{x:>22}" for x in cells))


def power_table(trials: int, rng: np.random.Generator) -> None:
    print("\n2. Power: share flagged as a regression / wrongly called unchanged")
    cases = (("p99 x1.5 (tail)", "p99", {"tail": 1.5}), ("p99 x2 (tail)", "p99", {"tail": 2.0}),
             ("p99 x2 (all)", "p99", {"body": 2.0}), ("mean +20% (all)", "mean", {"body": 1.2}))
    print(f"{'slowdown':>16} {'ref':>9} {'noise':>6}  " + "  ".join(f"n={n:<13}"
                                                               for n in (40, 200, 1000)))
    for label, metric, shape in cases:
        for ref in ("last", "median:5"):
            for noise in (0.0, 0.05):
                cells = []
                for n in (40, 200, 1000):
                    c: Counter[str] = Counter(verdicts(rng, n, noise, ref, **shape)[metric]
                                              for _ in range(trials))
                    cells.append(f"{c['regression'] / trials:6.1%} / "
                                 f"{c['unchanged'] / trials:4.1%}")
                print(f"{label:>16} {ref:>9} {noise:>6.0%}  " + "  ".join(f"{x:<15}"
                                                                     for x in cells))


def coverage_table(trials: int, rng: np.random.Generator) -> None:
    big = latencies(rng, 4_000_000)
    truth = {"p50": float(np.quantile(big, 0.5)), "p90": float(np.quantile(big, 0.9)),
             "p99": float(np.quantile(big, 0.99)), "mean": float(big.mean()),
             "throughput": 1 / float(big.mean()) * (1 - ERROR_RATE),
             "success_ratio": 1 - ERROR_RATE}
    print("\n3. Coverage of the reported 95% intervals (share covering the truth / share "
          "bounded on both sides)")
    names = ("p50", "p90", "p99", "mean", "throughput", "success_ratio")
    print(f"{'n':>5}  " + "  ".join(f"{m:>15}" for m in names))
    for n in (50, 200, 1000):
        covered: Counter[str] = Counter()
        bounded: Counter[str] = Counter()
        for _ in range(trials):
            r = run_result(latencies(rng, n), rng)
            for m in names:
                if m == "success_ratio":
                    from pytest_servebench.stats import binomial_ratio_estimate

                    est = binomial_ratio_estimate(r.ok_count, r.count, r.confidence)
                else:
                    est = r.metric(m)
                covered[m] += est.low <= truth[m] <= est.high
                bounded[m] += est.bounded
        print(f"{n:>5}  " + "  ".join(f"{covered[m] / trials:6.1%} / {bounded[m] / trials:6.1%}"
                                      for m in names))
    print("\n   the mean on a 98/2 bimodal of 5 ms / 200 ms (true mean 8.9 ms), timeout 30 s:")
    for n in (50, 200, 1000):
        hits = 0
        for _ in range(trials):
            xs = np.where(rng.random(n) < 0.02, 0.200, 0.005) * rng.uniform(0.98, 1.02, n)
            r = run_result(xs, np.random.default_rng(0))
            est = r.latency.mean
            hits += est.low <= 0.0089 <= est.high
        print(f"   n={n:<5} coverage {hits / trials:6.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--only", choices=("aa", "power", "coverage"), default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    print(f"bench_verdicts: {args.trials} trials per cell, seed {args.seed}; thresholds {SPEC}; "
          f"{ERROR_RATE:.1%} of requests fail at random")
    if args.only in (None, "aa"):
        aa_table(args.trials, rng)
    if args.only in (None, "power"):
        power_table(args.trials, rng)
    if args.only in (None, "coverage"):
        coverage_table(args.trials, rng)
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
