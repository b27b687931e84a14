"""The metric vocabulary: every name a result, an SLO, a comparison or a summary table can use,
what kind of quantity it is, its units, how it prints and how a name such as ``p99.9`` or
``cold_start_p50`` reads. Other modules ask here instead of listing names of their own.

>>> m = parse_metric("cold_start_p99.9")
>>> m.source, m.stat, m.kind, m.interval
('cold_start', 'p99.9', 'latency', True)
>>> parse_metric("p999").quantile == m.quantile == quantile_of("p99.9")  # p9999 is p99.99
True
>>> parse_metric("throughput").kind, parse_metric("usd_per_million").kind
('throughput', 'usd')
>>> format_value("latency", 0.0123), parse_bound("latency", 200, "ms")
('12.3ms', 0.2)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["latency", "throughput", "ratio", "usd", "count"]
# Where a metric is read from: a latency sample (every request's, the cold starts', their init
# durations'), the run's throughput, success ratio or error count, its cost; "other" is a name
# the vocabulary does not know (a result's ``extra_metrics``; an unknown name fails when looked
# up), read as a latency on its point value, as any name always was.
Source = Literal["latency", "cold_start", "init_duration", "throughput", "success_ratio",
                 "error_count", "cost", "other"]

# What every latency sample is summarised by, and what the history keeps of it.
LATENCY_STATS = ("p50", "p90", "p95", "p99", "p999", "mean", "max")
QUANTILES: dict[str, float] = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99,
                               "p999": 0.999}
# Latency samples besides every request's: ``cold_start`` (alone: its mean), ``cold_start_p99``,
# ``init_duration_max``...
COLD_START_SOURCES: tuple[Source, ...] = ("cold_start", "init_duration")
USD_METRICS = ("usd_per_request", "usd_per_1000", "usd_per_million")
# What a run can be compared on against a baseline (``compare``).
COMPARABLE = (*LATENCY_STATS, "throughput", "success_ratio", "usd_per_million")

TIME_UNITS_S = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "min": 60.0}
RATE_UNITS = ("", "rps", "/s", "req/s", "qps", "ips")
USD_UNITS = ("", "usd", "$")

_PCT = re.compile(r"^p(\d+(?:\.\d+)?)$")
_SOURCES: dict[str, Source] = {"throughput": "throughput", "success_ratio": "success_ratio",
                               "error_count": "error_count"}
_KINDS: dict[Source, Kind] = {"throughput": "throughput", "success_ratio": "ratio",
                              "error_count": "count", "cost": "usd"}


def quantile_of(stat: str) -> float | None:
    """0..1 for names like ``p50``, ``p99``, ``p999`` (99.9), ``p99.9``; None otherwise.
    A percentile above 100 raises ``ValueError``."""
    m = _PCT.match(stat)
    if not m:
        return None
    digits = m.group(1)
    if "." not in digits and len(digits) > 2 and digits.startswith("99"):
        digits = "99." + digits[2:]
    q = float(digits) / 100
    if not 0 <= q <= 1:
        raise ValueError(f"percentile out of range in {stat!r}")
    return q


@dataclass(frozen=True)
class Metric:
    """A metric name, read: where its value comes from and, for a latency sample, which
    statistic (``p99.9``, ``mean``, ``max``) of it."""

    name: str
    source: Source
    stat: str | None = None
    quantile: float | None = None

    @property
    def kind(self) -> Kind:
        return _KINDS.get(self.source, "latency")

    @property
    def interval(self) -> bool:
        """Whether it carries a confidence interval it is judged on (a latency sample's
        percentiles and mean); the others are judged on their measured value."""
        return self.stat is not None and self.stat != "max"

    def format(self, value: float) -> str:
        return format_value(self.kind, value)


def _latency_stat(name: str, source: Source, stat: str) -> Metric | None:
    if stat in ("mean", "max"):
        return Metric(name, source, stat)
    q = quantile_of(stat)
    return None if q is None else Metric(name, source, stat, q)


def parse_metric(name: str) -> Metric:
    """Read a metric name; an unknown one reads as source ``other``. A percentile above 100
    raises ``ValueError``."""
    if name in _SOURCES:
        return Metric(name, _SOURCES[name])
    if name.startswith("usd_"):
        return Metric(name, "cost")
    found = _latency_stat(name, "latency", name)
    if found is not None:
        return found
    for source in COLD_START_SOURCES:
        if name == source:
            return Metric(name, source, "mean")
        if name.startswith(source + "_"):
            found = _latency_stat(name, source, name[len(source) + 1:])
            if found is not None:
                return found
    return Metric(name, "other")


def kind_of(name: str) -> Kind:
    return parse_metric(name).kind


def format_value(kind: Kind, value: float) -> str:
    """A value as the tables and SLO messages print it: ``12.3ms``, ``1,250/s``, ``$0.69``."""
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if kind == "latency":
        if abs(value) < 1e-3:
            return f"{value * 1e6:.3g}µs"
        if abs(value) < 1:
            return f"{value * 1e3:.4g}ms"
        return f"{value:.4g}s"
    if kind == "ratio":
        return f"{value:.6g}"
    if kind == "throughput":
        return f"{value:,.0f}/s" if abs(value) >= 1000 else f"{value:.4g}/s"
    if kind == "usd":
        return f"${value:.4g}"
    return f"{value:g}"


def parse_bound(kind: Kind, number: float, unit: str) -> float:
    """A bound written with its unit, in the metric's base unit (seconds, a 0..1 ratio,
    requests/s, dollars); ``ValueError`` says what the kind takes."""
    if kind == "latency":
        scale = TIME_UNITS_S.get(unit, TIME_UNITS_S.get(unit.lower()))
        if scale is None:
            raise ValueError(f"unknown time unit {unit!r} (use s, ms or us)")
        bound = number * scale
        if bound < 0:
            raise ValueError("a latency bound cannot be negative")
        return bound
    if kind == "ratio":
        if unit not in ("", "%"):
            raise ValueError("a ratio takes no unit or %")
        bound = number / 100 if unit == "%" else number
        if not 0 <= bound <= 1:
            raise ValueError("a ratio lies between 0 and 1 (or 0% and 100%)")
        return bound
    if kind == "throughput":
        if unit.lower() not in RATE_UNITS:
            raise ValueError("throughput takes /s, rps or no unit")
        return number
    if kind == "usd":
        if unit.lower() not in USD_UNITS:
            raise ValueError("a cost takes usd, $ or no unit")
        return number
    if unit:
        raise ValueError("a count takes no unit")
    return number
