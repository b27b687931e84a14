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

    def __post_init__(self) -> None:
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
