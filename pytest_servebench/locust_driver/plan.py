"""How a workload is shared among Locust workers: pure functions, no Locust here.

- Scheduled workloads (``OpenLoop``, ``MMPP``): the whole arrival schedule is drawn once, from the
  workload's own seed (the MMPP state sequence included), and arrival ``i`` goes to worker
  ``i mod N``. Each worker then carries rate/N with a phase of its own, and together they send
  exactly the scheduled arrivals, each timed from its intended send time.
- ``ClosedLoop``: the users are dealt out as evenly as they go (c = 5 on 2 workers: 3 and 2), and
  the measured and warm-up request counts in proportion to each worker's users.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass
from typing import Any

from ..workloads import MMPP, AnyWorkload, ClosedLoop, OpenLoop


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """What one worker runs. Times are seconds from the run's common start."""

    index: int
    kind: str  # "scheduled" or "closed"
    # scheduled: (global request index, intended send time, warm-up?) per arrival
    arrivals: tuple[tuple[int, float, bool], ...] = ()
    max_in_flight: int = 1024
    # closed
    users: int = 0
    requests: int | None = None
    duration_s: float | None = None
    warmup_requests: int = 0
    warmup_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["arrivals"] = [list(a) for a in self.arrivals]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerPlan:
        fields = dict(data)
        fields["arrivals"] = tuple((int(i), float(t), bool(w)) for i, t, w in data["arrivals"])
        return cls(**fields)


def _deal(total: int, shares: list[int]) -> list[int]:
    """``total`` split in proportion to ``shares`` (largest remainders), summing to it."""
    weight = sum(shares)
    exact = [total * s / weight for s in shares]
    out = [int(x) for x in exact]
    for i in sorted(range(len(shares)), key=lambda k: exact[k] - out[k],
                    reverse=True)[: total - sum(out)]:
        out[i] += 1
    return out


def split(workload: AnyWorkload, workers: int) -> list[WorkerPlan]:
    """One plan per worker. Every worker gets a plan, even an empty one (a closed loop with
    fewer users than workers leaves some idle)."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if isinstance(workload, (OpenLoop, MMPP)):
        schedule = workload.schedule()
        n_warm = bisect.bisect_left(schedule, workload.warmup_s)
        per: list[list[tuple[int, float, bool]]] = [[] for _ in range(workers)]
        for i, t in enumerate(schedule):
            per[i % workers].append((i, t, i < n_warm))
        # The in-flight bound is the run's: shared out like the arrivals.
        caps = _deal(workload.max_in_flight, [1] * workers)
        return [WorkerPlan(k, "scheduled", tuple(per[k]), max(1, caps[k]))
                for k in range(workers)]
    if isinstance(workload, ClosedLoop):
        users = _deal(workload.concurrency, [1] * workers)
        active = [u for u in users if u > 0]
        requests = (None if workload.requests is None
                    else iter(_deal(workload.requests, active)))
        warm = iter(_deal(workload.warmup_requests, active))
        plans = []
        for k, u in enumerate(users):
            if u == 0:
                plans.append(WorkerPlan(k, "closed", users=0, requests=0,
                                        duration_s=workload.duration_s))
                continue
            plans.append(WorkerPlan(
                k, "closed", users=u,
                requests=None if requests is None else next(requests),
                duration_s=workload.duration_s, warmup_requests=next(warm),
                warmup_s=workload.warmup_s))
        return plans
    raise TypeError(f"unknown workload {workload!r}")


__all__ = ["WorkerPlan", "split"]
