"""The budget guard: what a run will cost on AWS before it is sent, and what it has cost so far.

An estimate is an upper-leaning guess made before anything is measured: every request billed at
``assumed_duration_s`` (default 1 s: a warm ``mobilenet_v2`` call on Lambda takes 0.1-0.6 s, a
cold one adds its init), plus the request price, plus provisioned concurrency kept for the run's
time limit. Once a run has been measured, its priced result (REPORT-billed durations) replaces
the guess in the running total.

>>> from pytest_servebench import ClosedLoop
>>> from pytest_servebench.pricebook import load_price_book
>>> round(estimate_workload_usd(ClosedLoop(concurrency=4, requests=1000), memory_mb=1024,
...                             book=load_price_book()), 4)
0.0169
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...pricebook import Arch, PriceBook

DEFAULT_BUDGET_USD = 1.00
DEFAULT_ASSUMED_DURATION_S = 1.0


class OverBudget(RuntimeError):
    pass


def expected_requests(workload: Any, *, assumed_duration_s: float) -> float:
    """How many requests ``workload`` sends: its count, or its rate times its duration (a
    closed loop that runs for a time: one request per user per ``assumed_duration_s``)."""
    kind = getattr(workload, "kind", "")
    if kind == "closed":
        if workload.requests is not None:
            return float(workload.requests + workload.warmup_requests)
        span = (workload.duration_s or 0.0) + workload.warmup_s
        return float(workload.concurrency * span / max(assumed_duration_s, 1e-3))
    if kind == "open":
        return float(workload.rate * (workload.duration_s + workload.warmup_s))
    if kind == "mmpp":
        return float(workload.mean_rate * (workload.duration_s + workload.warmup_s))
    raise ValueError(f"cannot estimate the requests of a {kind or type(workload).__name__} "
                     "workload")


def estimate_workload_usd(workload: Any, *, memory_mb: int, book: PriceBook,
                          arch: Arch = "x86_64", provisioned_concurrency: int = 0,
                          time_limit_s: float = 600.0,
                          assumed_duration_s: float = DEFAULT_ASSUMED_DURATION_S) -> float:
    """The guess for one run of ``workload`` against one function."""
    n = expected_requests(workload, assumed_duration_s=assumed_duration_s)
    usd = estimate_requests_usd(n, memory_mb=memory_mb, book=book, arch=arch,
                                assumed_duration_s=assumed_duration_s)
    if provisioned_concurrency:
        keep, _ = book.lambda_provisioned_usd_per_gb_s(arch)
        usd += provisioned_concurrency * (memory_mb / 1024) * keep * time_limit_s
    return usd


def estimate_requests_usd(requests: float, *, memory_mb: int, book: PriceBook,
                          arch: Arch = "x86_64",
                          assumed_duration_s: float = DEFAULT_ASSUMED_DURATION_S) -> float:
    """``requests`` invocations billed at ``assumed_duration_s`` each, plus their price."""
    return requests * ((memory_mb / 1024) * assumed_duration_s * book.lambda_usd_per_gb_s(arch)
                       + book.lambda_usd_per_request())


@dataclass
class Budget:
    """The session's allowance and what has been committed against it."""

    limit_usd: float = DEFAULT_BUDGET_USD
    spent_usd: float = 0.0
    runs: list[tuple[str, float, str]] = field(default_factory=list)  # (what, usd, how)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.limit_usd) and self.limit_usd >= 0):
            raise ValueError(f"a budget is a dollar amount >= 0, not {self.limit_usd}")

    def admit(self, what: str, estimate_usd: float) -> None:
        """Refuse (``OverBudget``) a run whose estimate would take the total past the limit;
        nothing has been sent when this raises."""
        if self.spent_usd + estimate_usd > self.limit_usd:
            raise OverBudget(
                f"{what}: estimated ${estimate_usd:.4f} on AWS would take this session to "
                f"${self.spent_usd + estimate_usd:.4f}, over its budget of "
                f"${self.limit_usd:.2f} (--servebench-aws-budget-usd); nothing was sent")

    def charge(self, what: str, usd: float, *, how: str = "measured") -> None:
        self.spent_usd += usd
        self.runs.append((what, usd, how))
