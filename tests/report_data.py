"""History entries and runs built from made-up latencies, for the HTML report's tests: a study
module in miniature with a concurrency sweep, functions of two memory sizes and a server (with
costs), cold starts and a bursty run."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pytest_servebench.cost import CostEstimate
from pytest_servebench.history import (
    Entries,
    Entry,
    Run,
    StoredColdStarts,
    StoredVerdict,
    ThroughputWindow,
    make_entry,
)
from pytest_servebench.result import summarize

from .synthetic import recording

MODULE = "suites/test_study.py"


def entry(nodeid: str, latencies_s: Sequence[float], *, target: str = "lambda:fn",
          profile: Mapping[str, Any] | None = None, workload: Mapping[str, Any] | None = None,
          **fields: Any) -> Entry:
    """An entry of ``nodeid`` with these latencies; ``fields`` replace the entry's own
    (``cost``, ``cold_starts``, ``throughput``...), the key staying that of the identity."""
    result = summarize(recording(latencies_s), target=target,
                       target_profile=dict(profile or {"platform": "lambda", "memory_mb": 1024}),
                       workload=dict(workload or {"kind": "closed", "concurrency": 1,
                                                  "str": "closed(c=1)"}),
                       timeout_s=30.0)
    return replace(make_entry(nodeid, result, [], "local"), **fields)


def cost(usd_per_million: float, platform: str = "lambda") -> CostEstimate:
    return CostEstimate(usd_per_million / 1e6, platform, "made up", "2025-06-01")


def _latencies(rng: random.Random, n: int, median_s: float) -> list[float]:
    return [median_s * rng.lognormvariate(0, 0.3) for _ in range(n)]


def study_entries(seed: int = 0, *, scale: float = 1.0) -> list[Entry]:
    """The miniature study's entries; ``scale`` multiplies every latency (a slower run)."""
    rng = random.Random(seed)
    out = []
    for memory_mb, target, base_s in ((1024, "lambda:fn-1024", 0.020),
                                      (2048, "lambda:fn-2048", 0.012)):
        for users in (1, 4, 16):
            out.append(entry(
                f"{MODULE}::test_sweep[{memory_mb}-users={users}]",
                _latencies(rng, 200, base_s * scale * (1 + users / 8)), target=target,
                profile={"platform": "lambda", "memory_mb": memory_mb},
                workload={"kind": "closed", "concurrency": users, "str": f"closed(c={users})"},
                throughput=users / (base_s * scale * (1 + users / 8)),
                cost=cost(0.2 * memory_mb / 1024 * base_s / 0.012),
                slo=(StoredVerdict("p99 < 200ms", "pass"),
                     StoredVerdict("success_ratio >= 0.99",
                                   "inconclusive" if users == 16 else "pass"))))
    out.append(entry(f"{MODULE}::test_sweep[server-users=4]",
                     _latencies(rng, 200, 0.008 * scale), target="ec2:c5.large",
                     profile={"platform": "ec2", "memory_gb": 4.0},
                     workload={"kind": "closed", "concurrency": 4, "str": "closed(c=4)"},
                     cost=cost(0.15, "ec2"), slo=(StoredVerdict("p99 < 200ms", "fail"),)))
    cold = entry(f"{MODULE}::test_cold_start[fn-1024]", [0.400 * scale], target="lambda:fn-1024",
                 profile={"platform": "lambda", "memory_mb": 1024}, cost=cost(9.0),
                 cold_starts=StoredColdStarts(1, 0.400 * scale))
    out.append(cold)
    counts = (4, 5, 30, 28, 6, 5, 4, 31, 5, 4)
    out.append(entry(
        f"{MODULE}::test_bursts[<peak>=40]", _latencies(rng, sum(counts), 0.015 * scale),
        target="lambda:fn-2048", profile={"platform": "lambda", "memory_mb": 2048},
        workload={"kind": "mmpp", "str": "mmpp(0.5/2/s, 20s)"},
        throughput_window=ThroughputWindow(10.0, counts), offered_rate=12.0,
        count=sum(counts) + 3, ok_count=sum(counts), errors={"timeout": 3},
        cold_starts=StoredColdStarts(2, 0.380 * scale)))
    return out


def run(entries: Sequence[Entry], run_id: str, *, name: str | None = None) -> Run:
    return Run(run_id=run_id, created_utc=f"2026-11-25T10:{run_id[-2:]}:00+00:00",
               entries=Entries(entries), name=name, backend="local",
               machine={"cpu": "test cpu", "cores": 2, "memory_gib": 4.0})


def study_runs(n: int = 3) -> list[Run]:
    """``n`` runs of the study, the last one 30% slower."""
    return [run(study_entries(i, scale=1.3 if i == n - 1 else 1.0), f"run{i:02d}")
            for i in range(n)]
