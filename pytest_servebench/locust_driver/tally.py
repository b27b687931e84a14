"""What a worker ships instead of its requests: mergeable histograms and counts (pure functions,
no Locust here).

A worker keeps its requests' records to itself. When the run is over the master works out the
measuring window from what each worker said when it finished (``window_of``), asks every worker
for its ``Tally`` over that window, adds them up, and ``result_from`` reads the same ``Result``
the in-process engine's ``result.summarize`` would read from all the records, with one
difference: latencies (and schedule lags, cold-start latencies, init durations) come from
``LatencyHistogram`` buckets, so each percentile, interval end and mean is within the
histogram's relative accuracy (1%) of the one the records give. Counts, errors, the success
ratio, throughput and its per-interval counts, the late count and the maxima are exact.

The messages stay small whatever the run's length: a histogram holds one count per occupied
bucket (a 1% bucket per 2% of latency: about 700 buckets from 10 us to 10 s).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..histogram import LatencyHistogram
from ..records import Record
from ..result import (
    CENSORED_ERRORS,
    MAX_THROUGHPUT_BINS,
    ColdStarts,
    LatencySummary,
    Result,
    ScheduleLag,
)
from ..settings import LATE_THRESHOLD_S, MAX_LATE_SHARE
from ..stats import DEFAULT_CONFIDENCE, percentile
from ..target import Reply


@dataclass(frozen=True, slots=True)
class Window:
    """The measuring window the master asks every worker to tally over (seconds from the
    run's common start). ``whole``: every ok measured request counts as one completion (open
    loop, or a closed loop's fallback window); otherwise a closed loop's requests count for the
    share of their time inside it (``records.closed_window``)."""

    start_s: float
    end_s: float
    whole: bool


@dataclass
class Sample:
    """A histogram with the exact largest value recorded in it."""

    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    max_s: float = -math.inf

    def add(self, value_s: float) -> None:
        self.histogram.record(max(0.0, value_s))
        self.max_s = max(self.max_s, value_s)

    def merge(self, other: Sample) -> None:
        self.histogram.merge(other.histogram)
        self.max_s = max(self.max_s, other.max_s)

    @property
    def count(self) -> int:
        return self.histogram.count

    def values(self) -> list[float]:
        """The sample as the histogram has it (bucket values), sorted, ending with the exact
        maximum: the top bucket's values above it are lowered to it (they stay in their
        bucket, which holds the maximum)."""
        out: list[float] = []
        for value, n in self.histogram.samples():
            out.extend([value] * n)
        if out:
            if out[-1] > self.max_s:
                out = [min(v, self.max_s) for v in out]
            out[-1] = self.max_s
        return out

    def to_json(self) -> dict[str, Any]:
        return {"histogram": self.histogram.to_dict(), "max_s": self.max_s}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sample:
        return cls(LatencyHistogram.from_dict(data["histogram"]), float(data["max_s"]))


@dataclass
class Tally:
    """One worker's measurements over a window, or several workers' added (``merge``)."""

    records: int = 0
    measured: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # the first detail of each error kind, by (intended send time, index) as the records sort
    details: dict[str, tuple[float, int, str]] = field(default_factory=dict)
    censored: int = 0
    latency: Sample = field(default_factory=Sample)
    completions: float = 0.0
    in_window: int = 0  # ok measured completions inside (start, end]: a closed loop's test
    # ok measured completions per interval of the window, for every number of intervals the
    # result may use (1..MAX_THROUGHPUT_BINS): which one is known only once all are added
    bins: dict[int, list[int]] = field(default_factory=dict)
    # scheduled workloads
    lag: Sample = field(default_factory=Sample)
    late: int = 0
    intended_min_s: float = math.inf
    intended_max_s: float = -math.inf
    # targets that report cold starts (functions)
    cold: int = 0
    warm: int = 0
    cold_latency: Sample = field(default_factory=Sample)
    init_duration: Sample = field(default_factory=Sample)
    billed_s: Counter[float] = field(default_factory=Counter)  # exact: whole milliseconds

    def merge(self, other: Tally) -> None:
        self.records += other.records
        self.measured += other.measured
        self.ok += other.ok
        self.errors.update(other.errors)
        for kind, first in other.details.items():
            if kind not in self.details or first[:2] < self.details[kind][:2]:
                self.details[kind] = first
        self.censored += other.censored
        self.latency.merge(other.latency)
        self.completions += other.completions
        self.in_window += other.in_window
        for k, counts in other.bins.items():
            mine = self.bins.setdefault(k, [0] * k)
            for i, n in enumerate(counts):
                mine[i] += n
        self.lag.merge(other.lag)
        self.late += other.late
        self.intended_min_s = min(self.intended_min_s, other.intended_min_s)
        self.intended_max_s = max(self.intended_max_s, other.intended_max_s)
        self.cold += other.cold
        self.warm += other.warm
        self.cold_latency.merge(other.cold_latency)
        self.init_duration.merge(other.init_duration)
        self.billed_s.update(other.billed_s)

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "measured": self.measured, "ok": self.ok,
                "errors": dict(self.errors),
                "details": {k: list(v) for k, v in self.details.items()},
                "censored": self.censored, "latency": self.latency.to_json(),
                "completions": self.completions, "in_window": self.in_window,
                "bins": {str(k): v for k, v in self.bins.items()},
                "lag": self.lag.to_json(), "late": self.late,
                "intended_min_s": self.intended_min_s, "intended_max_s": self.intended_max_s,
                "cold": self.cold, "warm": self.warm,
                "cold_latency": self.cold_latency.to_json(),
                "init_duration": self.init_duration.to_json(),
                "billed_s": [[v, n] for v, n in self.billed_s.items()]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tally:
        return cls(
            records=int(data["records"]), measured=int(data["measured"]), ok=int(data["ok"]),
            errors=Counter({str(k): int(v) for k, v in data["errors"].items()}),
            details={str(k): (float(v[0]), int(v[1]), str(v[2]))
                     for k, v in data["details"].items()},
            censored=int(data["censored"]), latency=Sample.from_json(data["latency"]),
            completions=float(data["completions"]), in_window=int(data["in_window"]),
            bins={int(k): [int(n) for n in v] for k, v in data["bins"].items()},
            lag=Sample.from_json(data["lag"]), late=int(data["late"]),
            intended_min_s=float(data["intended_min_s"]),
            intended_max_s=float(data["intended_max_s"]),
            cold=int(data["cold"]), warm=int(data["warm"]),
            cold_latency=Sample.from_json(data["cold_latency"]),
            init_duration=Sample.from_json(data["init_duration"]),
            billed_s=Counter({float(v): int(n) for v, n in data["billed_s"]}))


_REPLY_FIELDS = tuple(f.name for f in fields(Reply) if f.name != "extra")


def row_of(record: Record) -> list[Any]:
    """A record as a worker ships it when records are asked for: the reply's fields that are
    set, and those of its ``extra`` that are plain data (a captured body or headers are not)."""
    reply = record.reply
    data = {name: getattr(reply, name) for name in _REPLY_FIELDS
            if getattr(reply, name) is not None}
    extra = {k: v for k, v in reply.extra.items()
             if isinstance(v, (str, int, float, bool, list, dict))}
    if extra:
        data["extra"] = extra
    return [record.index, record.warmup, record.intended_s, record.sent_s, record.done_s, data]


def record_of(row: Sequence[Any]) -> Record:
    index, warmup, intended, sent, done, reply = row
    return Record(int(index), bool(warmup), float(intended), float(sent), float(done),
                  Reply(**reply))


def finish_info(records: Sequence[Record]) -> dict[str, float | None]:
    """What a worker says when its share is done, for the master's ``window_of``."""
    measured = [r for r in records if not r.warmup]
    return {"warm_done_s": max((r.done_s for r in records if r.warmup), default=None),
            "measured_sent_s": min((r.sent_s for r in measured), default=None),
            "measured_done_s": max((r.done_s for r in measured), default=None),
            "wall_s": max((r.done_s for r in records), default=0.0)}


def window_of(kind: str, finished: Iterable[Mapping[str, Any]], *, warmup_s: float,
              duration_s: float | None) -> Window:
    """The run's measuring window from every worker's ``finish_info`` (and, for a closed loop,
    ``first_out``: when its first user ran out of work); the rule of ``records.Recording``."""
    done = list(finished)
    wall = max((float(d["wall_s"]) for d in done), default=0.0)
    if kind == "scheduled":
        ends = [float(d["measured_done_s"]) for d in done if d["measured_done_s"] is not None]
        return Window(warmup_s, max(max(ends, default=warmup_s), warmup_s), True)
    outs = [float(d["first_out"]) for d in done if d.get("first_out") is not None]
    end = min(outs) if outs else wall
    warm = [float(d["warm_done_s"]) for d in done if d["warm_done_s"] is not None]
    start = max(warm, default=0.0)
    if duration_s is not None:
        end = min(end, start + duration_s)
    return Window(start, end, False)


def fallback_window(finished: Iterable[Mapping[str, Any]]) -> Window:
    """A closed loop's window when no ok measured request completed inside its steady state:
    from the first measured send to the last measured completion, every ok request whole."""
    done = list(finished)
    sent = [float(d["measured_sent_s"]) for d in done if d["measured_sent_s"] is not None]
    ends = [float(d["measured_done_s"]) for d in done if d["measured_done_s"] is not None]
    if not sent:
        start = max((float(d["warm_done_s"]) for d in done if d["warm_done_s"] is not None),
                    default=0.0)
        return Window(start, start, True)
    first = min(sent)
    return Window(first, max(first, max(ends)), True)


def tally(records: Sequence[Record], window: Window, *, timeout_s: float,
          scheduled: bool, late_threshold_s: float = LATE_THRESHOLD_S) -> Tally:
    """One worker's ``Tally`` of its records over ``window`` (``result.summarize``'s rules)."""
    out = Tally(records=len(records))
    m0, m1 = window.start_s, window.end_s
    span = m1 - m0
    for r in sorted(records, key=lambda r: (r.intended_s, r.index)):
        if r.warmup:
            continue
        reply = r.reply
        out.measured += 1
        if scheduled:
            out.intended_min_s = min(out.intended_min_s, r.intended_s)
            out.intended_max_s = max(out.intended_max_s, r.intended_s)
            if reply.error == "not_sent":
                out.late += 1
            else:
                lag = max(0.0, r.lag_s)
                out.lag.add(lag)
                out.late += lag > late_threshold_s
        if reply.cold_start is not None:
            if reply.cold_start:
                out.cold += 1
                if reply.ok:
                    out.cold_latency.add(r.latency_s)
                    if reply.init_duration_s is not None:
                        out.init_duration.add(reply.init_duration_s)
            else:
                out.warm += 1
        if not reply.ok:
            kind = reply.error or "error"
            out.errors[kind] += 1
            if reply.detail and kind not in out.details:
                out.details[kind] = (r.intended_s, r.index, reply.detail)
            if reply.error in CENSORED_ERRORS:
                out.censored += 1
                out.latency.add(max(r.latency_s,
                                    timeout_s if reply.error == "timeout" else 0.0))
            continue
        out.ok += 1
        out.latency.add(r.latency_s)
        if reply.billed_duration_s is not None:
            out.billed_s[reply.billed_duration_s] += 1
        out.in_window += m0 < r.done_s <= m1
        if window.whole:
            out.completions += 1
        else:
            took = r.done_s - r.sent_s
            if took <= 0:
                out.completions += m0 < r.done_s <= m1
            else:
                out.completions += max(0.0, min(r.done_s, m1) - max(r.sent_s, m0)) / took
        if span > 0 and m0 <= r.done_s <= m1:
            at = (r.done_s - m0) / span
            for k in range(1, MAX_THROUGHPUT_BINS + 1):
                out.bins.setdefault(k, [0] * k)[min(k - 1, int(at * k))] += 1
    return out


def result_from(total: Tally, window: Window, *, target: str,
                target_profile: Mapping[str, Any], workload: Mapping[str, Any],
                scheduled: bool, started_unix_s: float, wall_s: float, max_in_flight: int,
                confidence: float = DEFAULT_CONFIDENCE, point_estimates: bool = False,
                timeout_s: float = math.inf, late_threshold_s: float = LATE_THRESHOLD_S,
                max_late_share: float = MAX_LATE_SHARE) -> Result:
    """The ``Result`` of the workers' added tallies: ``result.summarize`` read from histograms
    (see the module's text for what is exact and what is within the histograms' accuracy)."""
    latencies = total.latency.values()
    m0, m1 = window.start_s, window.end_s
    span = m1 - m0
    throughput = total.completions / span if span > 0 else math.nan
    bins: tuple[int, ...] = ()
    if span > 0 and total.completions > 0:
        k = max(1, min(MAX_THROUGHPUT_BINS, int(total.completions) // 10))
        bins = tuple(total.bins.get(k, [0] * k))
    lag = None
    offered = None
    if scheduled and total.measured:
        lags = total.lag.values() or [math.nan]
        lag = ScheduleLag(percentile(lags, .5), percentile(lags, .99), lags[-1], total.late,
                          late_threshold_s, total.measured, max_late_share)
        spread = total.intended_max_s - total.intended_min_s
        offered = (total.measured - 1) / spread if spread > 0 else None
    cold = None
    if total.cold or total.warm:
        inits = total.init_duration.values()
        cold = ColdStarts(
            count=total.cold, warm_count=total.warm,
            latency=LatencySummary.of(total.cold_latency.values(), confidence,
                                      upper_bound_s=timeout_s),
            init_duration=(LatencySummary.of(inits, confidence, upper_bound_s=timeout_s)
                           if inits else None))
    bound = max(timeout_s, total.latency.max_s) if latencies else timeout_s
    billed = sorted(total.billed_s.elements())
    return Result(
        target=target, target_profile=dict(target_profile), workload=dict(workload),
        count=total.measured, errors=dict(total.errors),
        success_ratio=total.ok / total.measured if total.measured else math.nan,
        throughput=throughput,
        latency=LatencySummary.of(latencies, confidence, upper_bound_s=bound),
        histogram=total.latency.histogram, duration_s=wall_s, started_unix_s=started_unix_s,
        cold_starts=cold, schedule_lag=lag, warmup_count=total.records - total.measured,
        max_in_flight=max_in_flight, records=(), confidence=confidence,
        point_estimates=point_estimates, censored=total.censored, timeout_s=timeout_s,
        window_s=span, throughput_bins=bins, offered_rate=offered,
        error_details={k: v[2] for k, v in total.details.items()},
        billed_durations_s=tuple(billed))


__all__ = ["Sample", "Tally", "Window", "fallback_window", "finish_info", "record_of",
           "result_from", "row_of", "tally", "window_of"]
