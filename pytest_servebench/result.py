"""Results: frozen summaries of one run, built from the engine's records by pure functions."""

from __future__ import annotations

import bisect
import csv
import io
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .cost import CostEstimate
from .histogram import LatencyHistogram
from .metrics import COLD_START_SOURCES, QUANTILES, USD_METRICS, Metric, parse_metric
from .records import Record, Recording
from .settings import LATE_THRESHOLD_S, MAX_LATE_SHARE
from .slo import SLO, Verdict
from .slo import check as check_slos
from .stats import (
    DEFAULT_CONFIDENCE,
    Estimate,
    mean_estimate,
    percentile,
    quantile_estimate,
)

# Client-side give-ups: their latency is at least the time waited (censored), and it counts.
CENSORED_ERRORS = ("timeout", "cancelled")
# Throughput is also read per interval of the measuring window, for its interval and for the
# regression gate's rate test.
MAX_THROUGHPUT_BINS = 20


@dataclass(frozen=True)
class LatencySummary:
    """Latency of successful requests and of timed-out ones (at no less than the timeout), in
    seconds, each with its confidence interval."""

    p50: Estimate
    p90: Estimate
    p95: Estimate
    p99: Estimate
    p999: Estimate
    mean: Estimate
    max: Estimate
    sorted_s: tuple[float, ...] = field(repr=False)
    confidence: float = DEFAULT_CONFIDENCE

    upper_bound_s: float = math.inf

    @classmethod
    def of(cls, latencies_s: Sequence[float], confidence: float, *,
           upper_bound_s: float = math.inf) -> LatencySummary:
        """``upper_bound_s``: no latency can be recorded above it (the request timeout); it
        bounds the mean's interval (see ``stats.mean_estimate``)."""
        xs = tuple(sorted(latencies_s))
        n = len(xs)
        q = {name: quantile_estimate(xs, p, confidence) for name, p in QUANTILES.items()}
        mx = Estimate.point(xs[-1] if xs else math.nan, n)
        return cls(mean=mean_estimate(xs, confidence, upper_bound=upper_bound_s), max=mx,
                   sorted_s=xs, confidence=confidence, upper_bound_s=upper_bound_s, **q)

    def percentile(self, q: float) -> Estimate:
        """Any quantile (0..1) with its interval."""
        return quantile_estimate(self.sorted_s, q, self.confidence)

    def count_above(self, bound_s: float) -> int:
        return len(self.sorted_s) - bisect.bisect_right(self.sorted_s, bound_s)

    @property
    def n(self) -> int:
        return len(self.sorted_s)


@dataclass(frozen=True)
class ScheduleLag:
    """How late scheduled requests left (open loop / MMPP only). ``late`` counts requests that
    left more than ``late_threshold_s`` after their intended time, or never left."""

    p50_s: float
    p99_s: float
    max_s: float
    late: int
    late_threshold_s: float
    count: int = 0
    max_late_share: float = MAX_LATE_SHARE

    @property
    def late_share(self) -> float:
        return self.late / self.count if self.count else 0.0

    @property
    def fell_behind(self) -> bool:
        """More late requests than ``max_late_share`` allows, beyond chance: one hiccup in a
        run of 50 is 2% of it, but a binomial test at 5% does not call it a trend."""
        if self.late_share <= self.max_late_share:
            return False
        from scipy.stats import binom

        return bool(binom.sf(self.late - 1, self.count, self.max_late_share) < 0.05)

    def text(self) -> str:
        return (f"{self.late} of {self.count} requests ({self.late_share:.1%}) left over "
                f"{self.late_threshold_s * 1000:g} ms late (lag p99 {self.p99_s * 1000:.3g} ms, "
                f"max {self.max_s * 1000:.3g} ms; bound {self.max_late_share:.0%})")


@dataclass(frozen=True)
class ColdStarts:
    """Requests the target reported as cold starts, and their latency and init time."""

    count: int
    warm_count: int
    latency: LatencySummary
    init_duration: LatencySummary | None


@dataclass(frozen=True)
class Result:
    """One run of a workload against a target.

    >>> result.p99.value < 0.2  # doctest: +SKIP
    >>> result.check("p99 < 200ms", "success_ratio >= 0.999")  # doctest: +SKIP
    """

    target: str
    target_profile: Mapping[str, Any]
    workload: Mapping[str, Any]
    count: int
    errors: Mapping[str, int]
    success_ratio: float
    throughput: float
    latency: LatencySummary
    histogram: LatencyHistogram
    duration_s: float
    started_unix_s: float
    cold_starts: ColdStarts | None = None
    schedule_lag: ScheduleLag | None = None
    warmup_count: int = 0
    max_in_flight: int = 0
    records: tuple[Record, ...] = field(default=(), repr=False)
    confidence: float = DEFAULT_CONFIDENCE
    point_estimates: bool = False
    extra_metrics: Mapping[str, Estimate] = field(default_factory=dict)
    cost: CostEstimate | None = None
    censored: int = 0
    timeout_s: float = math.inf
    window_s: float = math.nan
    throughput_bins: tuple[int, ...] = ()
    offered_rate: float | None = None
    error_details: Mapping[str, str] = field(default_factory=dict)
    # What a function reported it billed for each measured successful request (the cost
    # model's input; kept apart from the records, which a run may not keep).
    billed_durations_s: tuple[float, ...] = ()

    @property
    def valid(self) -> bool:
        """False when the load generator fell behind its schedule (see ``invalid_reason``)."""
        return self.invalid_reason is None

    @property
    def invalid_reason(self) -> str | None:
        lag = self.schedule_lag
        if lag is not None and lag.fell_behind:
            return f"the load generator fell behind its schedule: {lag.text()}"
        return None

    def throughput_estimate(self) -> Estimate:
        """Throughput with a t interval over the window's per-interval completion rates
        (unbounded when it holds fewer than 3 intervals). A closed loop's throughput is its
        concurrency over its mean latency (Little's law), so a slow mode the sample has not
        seen would lower it as it would raise the mean: the lower end also allows for the
        unseen tail, as the mean's upper end does (``stats.mean_estimate``)."""
        bins = self.throughput_bins
        if len(bins) < 3 or not self.throughput > 0:
            return Estimate(self.throughput, 0.0, math.inf, self.ok_count)
        import statistics

        from scipy.stats import t

        width = self.window_s / len(bins)
        rates = [c / width for c in bins]
        half = float(t.ppf(1 - (1 - self.confidence) / 2, len(rates) - 1)) * \
            statistics.stdev(rates) / math.sqrt(len(rates))
        low, high = self.throughput - half, self.throughput + half
        mean = self.latency.mean
        if self.workload.get("kind") == "closed" and mean.value > 0:
            low = min(low, self.throughput * mean.value / mean.high)
        return Estimate(self.throughput, max(0.0, low), high, self.ok_count)

    def errors_text(self) -> str:
        """The failures by kind, e.g. ``timeout x3 (no reply within 30s), http_415 x2``."""
        parts = []
        for kind, n in sorted(self.errors.items(), key=lambda kv: -kv[1]):
            detail = self.error_details.get(kind)
            parts.append(f"{kind} x{n}" + (f" ({detail[:120]})" if detail else ""))
        return ", ".join(parts)

    # --- convenience accessors, in the user's words
    @property
    def p50(self) -> Estimate:
        return self.latency.p50

    @property
    def p99(self) -> Estimate:
        return self.latency.p99

    @property
    def ok_count(self) -> int:
        return self.count - sum(self.errors.values())

    def metric(self, name: str) -> Estimate:
        """A metric by SLO name: ``p99``, ``p99.9``, ``mean``, ``max``, ``throughput``,
        ``success_ratio``, ``error_count``, ``cold_start`` (cold-start latency, mean),
        ``cold_start_p50``/``_max``/``_mean``, ``init_duration_*``, and ``usd_per_million`` /
        ``usd_per_1000`` / ``usd_per_request`` when the target's platform can be priced (see
        ``metrics`` for the vocabulary)."""
        if name in self.extra_metrics:
            return self.extra_metrics[name]
        metric = parse_metric(name)
        if metric.source == "throughput":
            return self.throughput_estimate()
        if metric.source == "success_ratio":
            return Estimate.point(self.success_ratio, self.count)
        if metric.source == "error_count":
            return Estimate.point(float(sum(self.errors.values())), self.count)
        if metric.source == "cost":
            if self.cost is None:
                raise LookupError(
                    f"{name}: this result has no cost (its target names no priced platform, "
                    "or a function reported no billed durations)")
            if name in USD_METRICS:
                usd: float = getattr(self.cost, name)
                return Estimate.point(usd, self.ok_count)
        summary = self.summary_of(name)
        if metric.source in COLD_START_SOURCES and (summary is None or summary.n == 0):
            raise LookupError(
                f"{name}: the target reported no cold starts in this run "
                "(force them with a cold-start workload, or use a target that reports them)")
        if summary is not None:
            return _statistic(summary, metric)
        raise LookupError(f"unknown metric {name!r}")

    def summary_of(self, name: str) -> LatencySummary | None:
        """The latency sample a metric is read from: every request's for ``p99`` or
        ``mean``, the cold starts' for ``cold_start_*``, their init durations' for
        ``init_duration_*``; None for other metrics or when the run has no such sample."""
        source = parse_metric(name).source
        if source == "latency":
            return self.latency
        cold = self.cold_starts
        if cold is None:
            return None
        if source == "cold_start":
            return cold.latency
        if source == "init_duration":
            return cold.init_duration
        return None

    def check(self, *slos: str | SLO, point_estimates: bool | None = None) -> list[Verdict]:
        """Judge SLOs such as ``"p99 < 200ms"``; raise ``SLOFailure`` (an AssertionError) with one
        line per bound that is not met, else return the verdicts."""
        __tracebackhide__ = True
        point = self.point_estimates if point_estimates is None else point_estimates
        return check_slos(self, *slos, point=point)

    def with_cost(self, estimate: CostEstimate) -> Result:
        """This result with its cost attached and usable in SLOs (``usd_per_million < 1``)."""
        return replace(self, cost=estimate)

    def records_csv(self) -> str:
        """Per-request records as CSV (seconds from the start of the run)."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["index", "warmup", "intended_s", "sent_s", "done_s", "latency_s", "ok",
                    "error", "status", "cold_start", "init_duration_s", "billed_duration_s",
                    "sandbox_id"])
        for r in self.records:
            p = r.reply
            w.writerow([r.index, int(r.warmup), f"{r.intended_s:.6f}", f"{r.sent_s:.6f}",
                        f"{r.done_s:.6f}", f"{r.latency_s:.6f}", int(p.ok), p.error or "",
                        p.status or "", "" if p.cold_start is None else int(p.cold_start),
                        p.init_duration_s or "", p.billed_duration_s or "", p.sandbox_id or ""])
        return buf.getvalue()


def _statistic(summary: LatencySummary, metric: Metric) -> Estimate:
    if metric.quantile is not None:
        return summary.percentile(metric.quantile)
    picked: Estimate = getattr(summary, str(metric.stat))
    return picked


def summarize(recording: Recording, *, target: str, target_profile: Mapping[str, Any],
              workload: Mapping[str, Any], confidence: float = DEFAULT_CONFIDENCE,
              point_estimates: bool = False, keep_records: bool = True,
              timeout_s: float = math.inf, late_threshold_s: float = LATE_THRESHOLD_S,
              max_late_share: float = MAX_LATE_SHARE) -> Result:
    """Turn raw records into a ``Result`` (pure: no clock, no I/O).

    Latency covers the successful requests and the ones the client gave up on
    (``CENSORED_ERRORS``): those count at no less than ``timeout_s``, so a stall longer than the
    timeout shows in every percentile, not only in the success ratio.
    """
    measured = [r for r in recording.records if not r.warmup]
    ok = [r for r in measured if r.reply.ok]
    failed = [r for r in measured if not r.reply.ok]
    errors = Counter(r.reply.error or "error" for r in failed)
    details: dict[str, str] = {}
    for r in failed:
        if r.reply.detail:
            details.setdefault(r.reply.error or "error", r.reply.detail)
    censored = [r for r in failed if r.reply.error in CENSORED_ERRORS]
    latencies = [r.latency_s for r in ok]
    latencies += [max(r.latency_s, timeout_s if r.reply.error == "timeout" else 0.0)
                  for r in censored]
    hist = LatencyHistogram()
    hist.record_many(max(0.0, x) for x in latencies)
    m0, m1 = recording.measure_start_s, recording.measure_end_s
    window = m1 - m0
    completions = recording.window_completions
    if completions is None:
        completions = len(ok)
    throughput = completions / window if window > 0 else math.nan
    bins: tuple[int, ...] = ()
    if window > 0 and completions > 0:
        k = max(1, min(MAX_THROUGHPUT_BINS, int(completions) // 10))
        counts = [0] * k
        for r in ok:
            if m0 <= r.done_s <= m1:
                counts[min(k - 1, int((r.done_s - m0) / window * k))] += 1
        bins = tuple(counts)

    lag = None
    offered = None
    if recording.scheduled and measured:
        sent = [r for r in measured if r.reply.error != "not_sent"]
        lags = sorted(max(0.0, r.lag_s) for r in sent) or [math.nan]
        late = sum(1 for x in lags if x > late_threshold_s)
        late += sum(1 for r in measured if r.reply.error == "not_sent")
        lag = ScheduleLag(percentile(lags, .5), percentile(lags, .99), lags[-1], late,
                          late_threshold_s, len(measured), max_late_share)
        span = max(r.intended_s for r in measured) - min(r.intended_s for r in measured)
        offered = (len(measured) - 1) / span if span > 0 else None

    cold = None
    reported = [r for r in measured if r.reply.cold_start is not None]
    if reported:
        cold_ok = [r for r in reported if r.reply.cold_start and r.reply.ok]
        inits = [r.reply.init_duration_s for r in cold_ok if r.reply.init_duration_s is not None]
        cold = ColdStarts(
            count=sum(1 for r in reported if r.reply.cold_start),
            warm_count=sum(1 for r in reported if not r.reply.cold_start),
            latency=LatencySummary.of([r.latency_s for r in cold_ok], confidence,
                                      upper_bound_s=timeout_s),
            init_duration=(LatencySummary.of(inits, confidence, upper_bound_s=timeout_s)
                           if inits else None),
        )

    bound = max([timeout_s, *latencies]) if latencies else timeout_s
    return Result(
        target=target, target_profile=dict(target_profile), workload=dict(workload),
        count=len(measured), errors=dict(errors),
        success_ratio=len(ok) / len(measured) if measured else math.nan,
        throughput=throughput,
        latency=LatencySummary.of(latencies, confidence, upper_bound_s=bound), histogram=hist,
        duration_s=recording.wall_s, started_unix_s=recording.started_unix_s, cold_starts=cold,
        schedule_lag=lag, warmup_count=len(recording.records) - len(measured),
        max_in_flight=recording.max_in_flight,
        records=recording.records if keep_records else (), confidence=confidence,
        point_estimates=point_estimates, censored=len(censored), timeout_s=timeout_s,
        window_s=window, throughput_bins=bins, offered_rate=offered, error_details=details,
        billed_durations_s=tuple(r.reply.billed_duration_s for r in ok
                                 if r.reply.billed_duration_s is not None),
    )
