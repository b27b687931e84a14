"""A mergeable latency histogram with bounded relative error.

Percentiles cannot be averaged: the p99 of two workers is not the mean of their p99s. Results
from several workers, sandboxes or runs are therefore combined by adding histograms, whose
buckets grow geometrically so that any quantile read back is within ``relative_accuracy`` of a
sample that was recorded (the DDSketch construction; HdrHistogram makes the same promise).

>>> h = LatencyHistogram()
>>> for ms in (1, 2, 3, 4, 100):
...     h.record(ms / 1000)
>>> round(h.quantile(0.5) * 1000, 1)
3.0
>>> (h + h).count
10
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_RELATIVE_ACCURACY = 0.01


@dataclass
class LatencyHistogram:
    """Counts of latencies (seconds) in log-spaced buckets; mergeable with ``+`` / ``merge``."""

    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
    zero_count: int = 0
    bins: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.relative_accuracy < 1:
            raise ValueError("relative_accuracy must be in (0, 1)")
        self._gamma = (1 + self.relative_accuracy) / (1 - self.relative_accuracy)
        self._log_gamma = math.log(self._gamma)

    @property
    def count(self) -> int:
        return self.zero_count + sum(self.bins.values())

    def _key(self, value: float) -> int:
        return math.ceil(math.log(value) / self._log_gamma)

    def _value(self, key: int) -> float:
        # Midpoint (in the relative sense) of bucket (gamma^(k-1), gamma^k].
        return 2 * self._gamma**key / (self._gamma + 1)

    def record(self, value: float, count: int = 1) -> None:
        if value < 0 or math.isnan(value):
            raise ValueError(f"latency must be a non-negative number, got {value!r}")
        if value == 0:
            self.zero_count += count
            return
        key = self._key(value)
        self.bins[key] = self.bins.get(key, 0) + count

    def record_many(self, values: Iterable[float]) -> None:
        for v in values:
            self.record(v)

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts into this histogram (same accuracy required)."""
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError(
                "cannot merge histograms of different relative accuracy "
                f"({self.relative_accuracy} vs {other.relative_accuracy})"
            )
        self.zero_count += other.zero_count
        for key, n in other.bins.items():
            self.bins[key] = self.bins.get(key, 0) + n

    def __add__(self, other: LatencyHistogram) -> LatencyHistogram:
        out = LatencyHistogram(self.relative_accuracy, self.zero_count, dict(self.bins))
        out.merge(other)
        return out

    def quantile(self, q: float) -> float:
        """Value at quantile ``q`` (0..1), nearest-rank on the bucketed data."""
        if not 0 <= q <= 1:
            raise ValueError("q must be in [0, 1]")
        total = self.count
        if total == 0:
            return math.nan
        rank = max(1, math.ceil(q * total))
        seen = self.zero_count
        if seen >= rank:
            return 0.0
        for key in sorted(self.bins):
            seen += self.bins[key]
            if seen >= rank:
                return self._value(key)
        return self._value(max(self.bins))  # pragma: no cover - rank <= total always

    def samples(self) -> list[tuple[float, int]]:
        """(representative value, count) pairs in increasing order, for rank statistics."""
        out = [(0.0, self.zero_count)] if self.zero_count else []
        out.extend((self._value(k), self.bins[k]) for k in sorted(self.bins))
        return out

    def to_dict(self) -> dict[str, Any]:
        keys = sorted(self.bins)
        return {
            "relative_accuracy": self.relative_accuracy,
            "zero_count": self.zero_count,
            "keys": keys,
            "counts": [self.bins[k] for k in keys],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        keys, counts = data["keys"], data["counts"]
        if len(keys) != len(counts):
            raise ValueError("histogram keys and counts differ in length")
        return cls(
            float(data["relative_accuracy"]),
            int(data["zero_count"]),
            {int(k): int(c) for k, c in zip(keys, counts, strict=True)},
        )
