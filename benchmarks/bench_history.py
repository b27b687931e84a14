"""Compare over a large history: load + find baselines + significance tests.

    python benchmarks/bench_history.py [--runs 10000] [--tests 1]

Builds a history of N runs (each with T results carrying a real 2,000-sample histogram), then
times `--servebench-compare` (last and median:5) for a new run. Goal: under 1 s for 10,000 runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from pytest_servebench.compare import compare_run, parse_thresholds
from pytest_servebench.engine import Record, Recording
from pytest_servebench.history import SCHEMA_VERSION, History, make_entry, new_run
from pytest_servebench.result import summarize
from pytest_servebench.target import Reply


def fake_result(rng: random.Random, scale: float):  # type: ignore[no-untyped-def]
    rows = []
    for i in range(2000):
        lat = rng.lognormvariate(-4.6, 0.4) * scale
        rows.append(Record(i, False, i * 1e-3, i * 1e-3, i * 1e-3 + lat, Reply(ok=True)))
    return summarize(Recording(tuple(rows), 0.0, 0.0, 2.0, 2.0, 1, False), target="t",
                     target_profile={"platform": "ec2", "instance_type": "c5.large"},
                     workload={}, keep_records=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--tests", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(1)
    template = [make_entry(f"t.py::test_{k}", fake_result(rng, 1.0), [], "local")
                for k in range(args.tests)]
    base_run = new_run(template, backend="local")
    import json

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.json"
        runs = [{**base_run.to_json(), "run_id": f"{i:012x}"} for i in range(args.runs)]
        path.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "runs": runs}))
        size_mb = path.stat().st_size / 1e6
        current = [make_entry(f"t.py::test_{k}", fake_result(rng, 1.2), [], "local")
                   for k in range(args.tests)]
        th = parse_thresholds("p99:10%,p50:10%,throughput:-5%,success_ratio:-0.01")
        for ref in ("last", "median:5"):
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                cmp = compare_run(current, History.at(path).runs(), ref=ref, thresholds=th)
                times.append(time.perf_counter() - t0)
            print(f"{args.runs} runs x {args.tests} test(s), {size_mb:.1f} MB, ref={ref}: "
                  f"median {statistics.median(times) * 1000:.0f} ms (load + compare), "
                  f"{len(cmp.regressions)} regressions flagged (20% slower), goal < 1000 ms")


if __name__ == "__main__":
    main()
