"""What goes into each figure of the HTML report, computed from history entries: pure data,
no matplotlib (``plots`` draws it), so every figure's content is tested without a browser.

Each function takes the entries of one test module (or the runs of a history) and returns
frozen values; an empty result means the data cannot draw that figure, and ``missing`` says
why in words the report prints.

>>> from pytest_servebench.histogram import LatencyHistogram
>>> h = LatencyHistogram()
>>> h.record_many(i / 1000 for i in range(1, 101))
>>> s = spectrum_of("t", h)
>>> s.quantiles[0], s.n, round(s.values_s[0] * 1000)
(0.0, 100, 1)
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..stats import DEFAULT_CONFIDENCE, Estimate

if TYPE_CHECKING:
    from ..histogram import LatencyHistogram
    from ..history import Entry, Run

SPECTRUM_POINTS = 40
MIN_SPECTRUM_N = 2  # one request has no spectrum: it is a point
TREND_RUNS = 20


# --- names -----------------------------------------------------------------------------------


def module_of(nodeid: str) -> str:
    """``suites/test_000.py::test_x[a]`` -> ``suites/test_000.py``."""
    return nodeid.split("::", 1)[0]


def function_of(nodeid: str) -> str:
    """``suites/test_000.py::test_x[a]`` -> ``test_x`` (a class method keeps its class)."""
    return nodeid.split("::", 1)[-1].split("[", 1)[0]


def params_of(nodeid: str) -> str:
    """``...::test_x[a-b]`` -> ``a-b``; empty without parameters."""
    _, sep, tail = nodeid.partition("[")
    return tail[:-1] if sep and tail.endswith("]") else ""


def entry_label(entry: Entry) -> str:
    """How a result is named in a legend: its parameters, else its target and workload (a
    test may run several against one target), and which repetition when the test ran the
    same workload again."""
    label = params_of(entry.nodeid) or " ".join(
        filter(None, (entry.target, str(entry.workload.get("str", "")))))
    repeat = entry.identity.get("repeat")
    if isinstance(repeat, int) and repeat:
        label += f" #{repeat + 1}"
    return label


def group_by_module(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(module_of(entry.nodeid), []).append(entry)
    return groups


def group_by_function(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(function_of(entry.nodeid), []).append(entry)
    return groups


# --- latency percentile spectrum ---------------------------------------------------------------


@dataclass(frozen=True)
class Spectrum:
    """Latency against percentile (HdrHistogram's plot): ``quantiles`` q from 0 to 1 - 1/n
    (drawn at 1/(1-q) on a log axis), the value at each and its distribution-free interval
    at ``confidence`` (NaN where the sample is too small to bound that side)."""

    label: str
    n: int
    quantiles: tuple[float, ...]
    values_s: tuple[float, ...]
    low_s: tuple[float, ...]
    high_s: tuple[float, ...]
    confidence: float


def spectrum_quantiles(n: int, points: int = SPECTRUM_POINTS) -> list[float]:
    """q from 0 to 1 - 1/n, evenly spaced in log(1/(1-q)): as many nines as n resolves."""
    if n < 2:
        return [0.0] if n else []
    top = math.log10(n)
    return [1 - 10 ** -(top * i / (points - 1)) for i in range(points)]


def spectrum_of(label: str, histogram: LatencyHistogram, *,
                confidence: float = DEFAULT_CONFIDENCE,
                points: int = SPECTRUM_POINTS) -> Spectrum:
    """The spectrum of a histogram; the bands come from the order statistics that bracket
    each quantile (``stats.order_statistic_bounds``), read off the same histogram."""
    from ..stats import order_statistic_bounds

    samples = histogram.samples()
    values = [v for v, _ in samples]
    cumulative: list[int] = []
    seen = 0
    for _, count in samples:
        seen += count
        cumulative.append(seen)
    n = seen

    def at_rank(rank: int) -> float:  # the rank-th smallest (0-based)
        return values[bisect.bisect_right(cumulative, rank)]

    qs = spectrum_quantiles(n, points)
    mid, low, high = [], [], []
    for q in qs:
        mid.append(at_rank(max(0, math.ceil(q * n) - 1)))
        lo, hi = order_statistic_bounds(n, q, confidence)
        low.append(math.nan if lo is None else min(at_rank(lo), mid[-1]))
        high.append(math.nan if hi is None else max(at_rank(hi), mid[-1]))
    return Spectrum(label, n, tuple(qs), tuple(mid), tuple(low), tuple(high), confidence)


def spectra(entries: Iterable[Entry], *, confidence: float = DEFAULT_CONFIDENCE
            ) -> list[Spectrum]:
    """One spectrum per result that has latencies."""
    return [spectrum_of(entry_label(e), e.histogram, confidence=confidence)
            for e in entries if e.histogram.count >= MIN_SPECTRUM_N]


# --- latency and throughput against concurrency -----------------------------------------------


@dataclass(frozen=True)
class ConcurrencyPoint:
    concurrency: int
    p50: Estimate
    p99: Estimate
    throughput: float


@dataclass(frozen=True)
class ConcurrencyCurve:
    """One target swept over closed-loop concurrency (users), in increasing order."""

    label: str
    points: tuple[ConcurrencyPoint, ...]


def _concurrency(entry: Entry) -> int | None:
    workload = entry.workload
    value = workload.get("concurrency")
    if workload.get("kind") != "closed" or isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def concurrency_curves(entries: Iterable[Entry]) -> list[ConcurrencyCurve]:
    """Closed-loop results of one test function and target at two or more concurrencies; a
    concurrency measured twice keeps its latest result."""
    groups: dict[tuple[str, str], dict[int, Entry]] = {}
    for entry in entries:
        c = _concurrency(entry)
        if c is None or entry.ok_count == 0:
            continue
        groups.setdefault((function_of(entry.nodeid), entry.target), {})[c] = entry
    kept = {key: by_c for key, by_c in groups.items() if len(by_c) >= 2}
    functions = {f for f, _ in kept}
    curves = []
    for (function, target), by_c in kept.items():
        label = target if len(functions) == 1 else f"{function}: {target}"
        curves.append(ConcurrencyCurve(label, tuple(
            ConcurrencyPoint(c, e.latency_s["p50"], e.latency_s["p99"], e.throughput)
            for c, e in sorted(by_c.items()))))
    return curves


# --- cost per million against memory size -----------------------------------------------------


@dataclass(frozen=True)
class CostPoint:
    """One target: its memory size, and the medians over its results of the cost per million
    and the p50 latency (``results`` of them)."""

    label: str
    platform: str
    memory_mb: float
    usd_per_million: float
    p50_s: float
    results: int


@dataclass(frozen=True)
class CostChart:
    """Cost against memory, as AWS Lambda Power Tuning draws it, with the cheapest and the
    fastest target marked (indices into ``points``)."""

    points: tuple[CostPoint, ...]
    cheapest: int
    fastest: int


def memory_mb_of(profile: Mapping[str, Any]) -> float | None:
    for key, scale in (("memory_mb", 1.0), ("memory_gb", 1024.0)):
        value = profile.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value) * scale
    return None


def cost_chart(entries: Iterable[Entry]) -> CostChart | None:
    """None unless two or more targets have a cost and a memory size. Results that include
    a cold start are left out: the chart is the steady state's price (as Power Tuning's
    averages of warm invocations)."""
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.cost is None or not math.isfinite(entry.cost.usd_per_million) \
                or memory_mb_of(entry.target_profile) is None \
                or (entry.cold_starts is not None and entry.cold_starts.count > 0):
            continue
        groups.setdefault(entry.target, []).append(entry)
    points = []
    for target, group in groups.items():
        p50s = [e.latency_s["p50"].value for e in group
                if math.isfinite(e.latency_s["p50"].value)]
        points.append(CostPoint(
            target, group[0].cost.platform if group[0].cost else "",
            memory_mb_of(group[0].target_profile) or math.nan,
            statistics.median(e.value("usd_per_million") for e in group),
            statistics.median(p50s) if p50s else math.nan, len(group)))
    if len(points) < 2:
        return None
    points.sort(key=lambda p: (p.memory_mb, p.label))
    cheapest = min(range(len(points)), key=lambda i: points[i].usd_per_million)
    fastest = min(range(len(points)),
                  key=lambda i: (math.isnan(points[i].p50_s), points[i].p50_s))
    return CostChart(tuple(points), cheapest, fastest)


# --- cold starts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColdStartBar:
    """A cold start split into what the history can tell apart: the request as a warm
    sandbox serves it (the median p50 of the same target's warm results in the module) and
    what the cold start added on top (its p50 less that). ``segments``: (name, seconds)."""

    label: str
    segments: tuple[tuple[str, float], ...]
    cold_starts: int


WARM = "warm request (p50 of warm results)"
OVERHEAD = "cold-start overhead"
UNSPLIT = "cold start (no warm result of this target to split it)"


def cold_start_bars(entries: Sequence[Entry]) -> list[ColdStartBar]:
    functions = {function_of(e.nodeid) for e in entries
                 if e.cold_starts is not None and e.cold_starts.count}
    warm: dict[str, list[float]] = {}
    for e in entries:
        p50 = e.latency_s["p50"].value
        if (e.cold_starts is None or e.cold_starts.count == 0) and math.isfinite(p50) \
                and e.ok_count:
            warm.setdefault(e.target, []).append(p50)
    bars = []
    for e in entries:
        cold = e.cold_starts
        if cold is None or cold.count == 0 or not math.isfinite(cold.latency_p50_s):
            continue
        label = entry_label(e) if len(functions) == 1 else \
            f"{function_of(e.nodeid)} {entry_label(e)}"
        if e.target in warm:
            w = statistics.median(warm[e.target])
            if w < cold.latency_p50_s:
                bars.append(ColdStartBar(label, ((WARM, w), (OVERHEAD, cold.latency_p50_s - w)),
                                         cold.count))
                continue
        bars.append(ColdStartBar(label, ((UNSPLIT, cold.latency_p50_s),), cold.count))
    return bars


# --- throughput and drops over time --------------------------------------------------------------


@dataclass(frozen=True)
class TimeSeries:
    """A scheduled (open-loop or bursty) run over its measuring window: completions per second
    in each interval the history keeps, against the offered rate; the drops (requests that did
    not succeed) are known in total only, by kind."""

    label: str
    start_s: tuple[float, ...]
    end_s: float
    rates: tuple[float, ...]
    offered_rate: float | None
    drops: int
    errors: Mapping[str, int]
    count: int


def time_series(entries: Iterable[Entry]) -> list[TimeSeries]:
    out = []
    for e in entries:
        window = e.throughput_window
        if not is_scheduled(e) or window is None or len(window.counts) < 2:
            continue
        width = window.width_s / len(window.counts)
        out.append(TimeSeries(
            entry_label(e), tuple(i * width for i in range(len(window.counts))),
            window.width_s, tuple(window.rates()), e.offered_rate, e.count - e.ok_count,
            dict(e.errors), e.count))
    return out


@dataclass(frozen=True)
class RequestTimeline:
    """Every measured request of a run over time, from its per-request records
    (``--servebench-records``): when each was due to be sent (seconds from the run's start),
    the latency of those that succeeded, and when the failed ones (drops) were sent."""

    label: str
    sent_s: tuple[float, ...]
    latency_s: tuple[float, ...]
    dropped_s: tuple[float, ...]
    errors: Mapping[str, int]


def request_timeline(label: str, rows: Iterable[Mapping[str, str]]) -> RequestTimeline:
    """A timeline from the rows of a records CSV (``Result.records_csv``); warm-up requests
    are left out, as the statistics leave them out."""
    sent, latency, dropped = [], [], []
    errors: dict[str, int] = {}
    for row in rows:
        if row["warmup"] == "1":
            continue
        at = float(row["intended_s"])
        if row["ok"] == "1":
            sent.append(at)
            latency.append(float(row["latency_s"]))
        else:
            dropped.append(at)
            kind = row["error"] or "error"
            errors[kind] = errors.get(kind, 0) + 1
    return RequestTimeline(label, tuple(sent), tuple(latency), tuple(dropped), errors)


def is_scheduled(entry: Entry) -> bool:
    """An open-loop or bursty run: requests sent on a schedule, not by waiting users."""
    return entry.workload.get("kind") not in (None, "closed")


# --- history trends -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendPoint:
    run_id: str
    created_utc: str
    p50: Estimate
    p99: Estimate


@dataclass(frozen=True)
class Trend:
    """One result's p50 and p99, with their intervals, over the last runs that measured it
    (same history key: test, target, backend and workload), oldest first."""

    label: str
    points: tuple[TrendPoint, ...]


def trends(entries: Iterable[Entry], runs: Sequence[Run], *, last: int = TREND_RUNS,
           ) -> list[Trend]:
    """A trend per entry of the report's run, from the newest ``last`` runs up to it that
    hold its key (``runs``: oldest first, ending with the reported run)."""
    out = []
    for entry in entries:
        points: list[TrendPoint] = []
        for run in reversed(runs):
            found = run.entry(entry.key)
            if found is None:
                continue
            points.append(TrendPoint(run.run_id, run.created_utc, found.latency_s["p50"],
                                     found.latency_s["p99"]))
            if len(points) >= last:
                break
        out.append(Trend(entry_label(entry), tuple(reversed(points))))
    return out
