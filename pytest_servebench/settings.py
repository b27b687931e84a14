"""Run settings shared by the fixture, the CLI and the engine."""

from __future__ import annotations

from dataclasses import dataclass

from .stats import DEFAULT_CONFIDENCE

# A scheduled request that left more than LATE_THRESHOLD_S after its intended time is late; a
# run with more than MAX_LATE_SHARE of its requests late (its schedule-lag p99 above the
# threshold) is INVALID, as MLPerf marks a run whose load generator could not keep up: its
# latency then measures the generator as much as the target. (A binomial test keeps one hiccup
# in a short run from invalidating it: see ``result.ScheduleLag.fell_behind``.)
LATE_THRESHOLD_S = 0.005
MAX_LATE_SHARE = 0.01
DRIVERS = ("inprocess", "locust")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How runs are bounded and judged. Command-line options map onto these fields."""

    timeout_s: float = 30.0
    time_limit_s: float = 600.0
    confidence: float = DEFAULT_CONFIDENCE
    point_estimates: bool = False
    keep_records: bool = True
    late_threshold_s: float = LATE_THRESHOLD_S
    max_late_share: float = MAX_LATE_SHARE
    # Who sends the requests: this process's engine, or Locust's master and workers
    # (``locust_driver``); ``locust_master`` is the master's HOST:PORT when workers on other
    # machines attach to it, ``locust_csv`` a prefix for Locust's own CSV statistics.
    driver: str = "inprocess"
    workers: int = 1
    locust_master: str | None = None
    locust_csv: str | None = None

    def __post_init__(self) -> None:
        if self.driver not in DRIVERS:
            raise ValueError(f"the driver is one of {', '.join(DRIVERS)}, not {self.driver!r}")
        if self.workers < 1:
            raise ValueError("the driver needs at least 1 worker")
        if self.locust_master is not None:
            host, sep, port = self.locust_master.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"the Locust master is HOST:PORT, not {self.locust_master!r}")
        if not self.timeout_s > 0:
            raise ValueError("the per-request timeout must be > 0 seconds")
        if not self.time_limit_s > 0:
            raise ValueError("the run time limit must be > 0 seconds")
        if not 0.5 <= self.confidence < 1:
            raise ValueError("confidence must be in [0.5, 1)")
        if not self.late_threshold_s > 0:
            raise ValueError("the late threshold must be > 0 seconds")
        if not 0 <= self.max_late_share < 1:
            raise ValueError("the late share bound must be in [0, 1)")
