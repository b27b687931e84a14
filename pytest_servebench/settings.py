"""Run settings shared by the fixture, the CLI and the engine."""

from __future__ import annotations

from dataclasses import dataclass

from .result import LATE_THRESHOLD_S, MAX_LATE_SHARE
from .stats import DEFAULT_CONFIDENCE


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
