"""Noise-aware comparison of a run against a baseline from the history.

Every compared metric ends in one of four verdicts:

- ``regression`` / ``improvement``: the change is beyond its threshold AND statistically
  significant (as asv requires before calling a regression), and larger than the run-to-run
  noise when the history has enough runs to measure it;
- ``unchanged``: a *decided* "no regression larger than the threshold": the confidence interval
  of the change (sampling and run-to-run noise together) stays inside the threshold;
- ``inconclusive``: neither could be shown. The reason says why and, where it can, about how
  many requests per run would decide it. An undecidable comparison never reads as an all-clear.

The test behind each metric:

- percentiles (p50..p999): an exact quantile test, Fisher's exact test on the counts above and
  below the pooled q-quantile of both samples (for p50 that is Mood's median test); the
  interval of the ratio comes from distribution-free order-statistic intervals of each side;
- mean: a permutation test of the difference of means on the stored histograms (Welch's t test
  beyond 5,000 samples, where the central limit theorem holds even for skewed latency); its
  interval from ``stats.mean_estimate`` on each side (honest on skewed data, so often wide);
- max: reported, never tested: it is one request, and no test can tell its change from chance;
  it is always ``inconclusive`` (bound it with an SLO, or gate on p999);
- throughput: Welch's t test on the completion rates of the measuring window's intervals (a
  closed loop's steady state; for open-loop and MMPP runs the rate achieved against the same
  offered schedule);
- success ratio: Fisher's exact test; the interval of the difference is Newcombe's hybrid score
  interval;
- usd_per_million: a server's cost per million follows 1/throughput; a function's follows its
  billed duration, judged here through the mean latency (a proxy: billed time is not kept
  per request in the history).

``median:N`` baselines pool the N runs' histograms, interval counts and request counts, so the
baseline has N times the samples. When the history holds at least three runs of a test, the
spread of their values sets a noise floor (as asv compares run-level statistics): a change must
exceed it to be significant, and the interval of "unchanged" widens by it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .histogram import LatencyHistogram
from .metrics import COMPARABLE, QUANTILES, parse_metric

if TYPE_CHECKING:
    from .history import Entry, Run

DEFAULT_FAIL_SPEC = "p99:10%,throughput:-5%,success_ratio:-0.01"
DEFAULT_ALPHA = 0.05
NOISE_RUNS = 10
MIN_NOISE_RUNS = 3
PERMUTATIONS = 2000
PERMUTATION_MAX_SAMPLES = 5000
_SPEC = re.compile(r"^\s*([a-z0-9_]+)\s*:\s*([-+]?[0-9]*\.?[0-9]+)\s*(%?)\s*$")
VERDICTS = ("regression", "improvement", "unchanged", "inconclusive")
VerdictKind = Literal["regression", "improvement", "unchanged", "inconclusive"]


@dataclass(frozen=True)
class Threshold:
    """``limit > 0``: an increase beyond it is bad (latency, cost); ``limit < 0``: a decrease
    beyond it is bad (throughput, success ratio). ``relative``: the limit is a fraction."""

    metric: str
    limit: float
    relative: bool

    def text(self) -> str:
        return f"{self.metric}:{self.limit * 100:+g}%" if self.relative else \
            f"{self.metric}:{self.limit:+g}"


def parse_thresholds(spec: str) -> list[Threshold]:
    """``"p99:10%,throughput:-5%,success_ratio:-0.1"``."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        m = _SPEC.match(part)
        if not m:
            raise ValueError(f"cannot read threshold {part!r}: expected METRIC:VALUE[%], e.g. "
                             "p99:10% or throughput:-5%")
        metric, value, pct = m.group(1), float(m.group(2)), m.group(3) == "%"
        if metric not in COMPARABLE:
            raise ValueError(f"no comparison for metric {metric!r}")
        if value == 0:
            raise ValueError(f"threshold {part!r}: a zero threshold flags every change")
        if metric == "success_ratio" and pct:
            raise ValueError(f"threshold {part!r}: success_ratio takes an absolute change, "
                             "e.g. success_ratio:-0.01")
        if metric != "success_ratio" and not pct:
            raise ValueError(f"threshold {part!r}: {metric} takes a relative change, e.g. "
                             f"{metric}:10%")
        if value <= -100 and pct:
            raise ValueError(f"threshold {part!r}: a fall of 100% or more cannot happen")
        out.append(Threshold(metric, value / 100 if pct else value, pct))
    return out


# --- the evidence for one metric ---------------------------------------------------------------


@dataclass(frozen=True)
class _Evidence:
    """What the data say about one metric: the point change (a ratio for relative metrics, a
    difference for absolute ones), its sampling interval (None sides: unbounded), the p-value
    of "no difference", and the request count per run below which the interval is unbounded."""

    current: float
    baseline: float
    low: float | None
    high: float | None
    p_value: float | None
    min_n: int | None = None
    reason: str | None = None
    note: str | None = None


def _samples(entries: Sequence[Entry]) -> Any:
    import numpy as np

    merged = LatencyHistogram()
    for e in entries:
        merged.merge(e.histogram)
    pairs = merged.samples()
    if not pairs:
        return np.array([])
    values, counts = zip(*pairs, strict=True)
    return np.repeat(np.array(values), np.array(counts))


def _quantile_min_n(q: float, confidence: float) -> int:
    from .stats import order_statistic_bounds

    n = 2
    while None in order_statistic_bounds(n, q, confidence):
        n = math.ceil(n * 1.1) + 1
    lo = n // 2
    while lo < n:  # the smallest such n (bounded-ness is monotone in n here)
        mid = (lo + n) // 2
        if None in order_statistic_bounds(mid, q, confidence):
            lo = mid + 1
        else:
            n = mid
    return n


def _quantile_evidence(q: float, current: Entry, baseline: Sequence[Entry],
                       alpha: float) -> _Evidence | None:
    import numpy as np
    from scipy.stats import fisher_exact

    from .stats import order_statistic_bounds, percentile

    x, y = np.sort(_samples([current])), np.sort(_samples(baseline))
    if len(x) == 0 or len(y) == 0:
        return None
    cut = float(np.quantile(np.concatenate([x, y]), q))
    above_x, above_y = int((x > cut).sum()), int((y > cut).sum())
    p = float(fisher_exact([[above_x, len(x) - above_x], [above_y, len(y) - above_y]]).pvalue)
    # Each side's interval at 1 - alpha/2, so the ratio's holds at 1 - alpha (Bonferroni).
    conf = 1 - alpha / 2
    xl, xh = order_statistic_bounds(len(x), q, conf)
    yl, yh = order_statistic_bounds(len(y), q, conf)
    cur, base = percentile(x.tolist(), q), percentile(y.tolist(), q)
    low = None if xl is None or yh is None or y[yh] <= 0 else float(x[xl] / y[yh])
    high = None if xh is None or yl is None or y[yl] <= 0 else float(x[xh] / y[yl])
    return _Evidence(cur, base, low, high, p, min_n=_quantile_min_n(q, conf))


def _mean_p_value(x: Any, y: Any) -> float:
    import numpy as np

    if len(x) + len(y) > PERMUTATION_MAX_SAMPLES:
        from scipy.stats import ttest_ind

        p = float(ttest_ind(x, y, equal_var=False).pvalue)
        return 1.0 if math.isnan(p) else p
    z = np.concatenate([x, y])
    observed = abs(float(x.mean() - y.mean()))
    rng = np.random.default_rng(0)  # reproducible verdicts
    idx = rng.permuted(np.tile(np.arange(len(z)), (PERMUTATIONS, 1)), axis=1)
    perm = z[idx]
    diffs = np.abs(perm[:, :len(x)].mean(axis=1) - perm[:, len(x):].mean(axis=1))
    return float((1 + np.sum(diffs >= observed - 1e-15)) / (PERMUTATIONS + 1))


def _mean_evidence(current: Entry, baseline: Sequence[Entry],
                   alpha: float) -> _Evidence | None:
    from .stats import mean_estimate

    x, y = _samples([current]), _samples(baseline)
    if len(x) < 2 or len(y) < 2:
        return None

    def bound(entries: Sequence[Entry]) -> float:
        return max((e.timeout_s for e in entries if e.timeout_s is not None),
                   default=math.inf)

    ex = mean_estimate(x.tolist(), 1 - alpha / 2, upper_bound=bound([current]))
    ey = mean_estimate(y.tolist(), 1 - alpha / 2, upper_bound=bound(baseline))
    low = ex.low / ey.high if math.isfinite(ey.high) and ey.high > 0 else None
    high = ex.high / ey.low if math.isfinite(ex.high) and ey.low > 0 else None
    return _Evidence(ex.value, ey.value, None if low is None else max(0.0, low), high,
                     _mean_p_value(x, y))


def _rates(entries: Sequence[Entry]) -> list[float]:
    return [rate for e in entries if e.throughput_window is not None
            for rate in e.throughput_window.rates()]


def _ar1_inflation(xs: Any) -> float:
    """(1 + r) / (1 - r) for the lag-1 autocorrelation r of a series (clipped to [0, 0.9]);
    1 for series too short to estimate it."""
    import numpy as np

    if len(xs) < 4:
        return 1.0
    d = xs - xs.mean()
    denom = float(np.dot(d, d))
    r = float(np.dot(d[:-1], d[1:])) / denom if denom > 0 else 0.0
    r = min(0.9, max(0.0, r))
    return (1 + r) / (1 - r)


def _throughput_evidence(current: Entry, baseline: Sequence[Entry],
                         alpha: float) -> _Evidence:
    import numpy as np
    from scipy.stats import t as student_t

    cur = current.throughput
    base = float(np.mean([b.throughput for b in baseline]))
    x, y = _rates([current]), _rates(baseline)
    note = None
    offered = current.offered_rate
    if offered:
        note = f"offered {offered:.4g}/s, achieved {cur / offered:.1%}"
    if len(x) < 3 or len(y) < 3:
        return _Evidence(cur, base, None, None, None, min_n=30, note=note,
                         reason="fewer than 3 intervals of completions on a side (runs saved "
                                "before schema 2, or under 30 completions)")
    xa, ya = np.array(x), np.array(y)
    mx, my = float(xa.mean()), float(ya.mean())
    if mx <= 0 or my <= 0:
        return _Evidence(cur, base, None, None, None, note=note, reason="no completions")
    # Neighbouring intervals share the machine's state: the variance of their mean grows by
    # (1 + r) / (1 - r) for a lag-1 autocorrelation r (an AR(1) effective sample size).
    vx = float(xa.var(ddof=1)) / len(xa) * _ar1_inflation(xa)
    vy = float(ya.var(ddof=1)) / len(ya) * _ar1_inflation(ya)
    se = math.sqrt(vx / mx**2 + vy / my**2)  # of the log ratio (delta method)
    if se == 0:
        p = 0.0 if mx != my else 1.0
        ratio = mx / my
        return _Evidence(cur, base, ratio, ratio, p, note=note)
    df = (vx + vy) ** 2 / ((vx**2 / (len(xa) - 1)) + (vy**2 / (len(ya) - 1))) \
        if vx + vy > 0 else len(xa) + len(ya) - 2
    k = float(student_t.ppf(1 - alpha / 2, max(1.0, df)))
    ratio = mx / my
    t_stat = (mx - my) / math.sqrt(vx + vy) if vx + vy > 0 else math.inf
    p = float(2 * student_t.sf(abs(t_stat), max(1.0, df)))
    return _Evidence(cur, base, ratio * math.exp(-k * se), ratio * math.exp(k * se),
                     1.0 if math.isnan(p) else p, note=note)


def _success_evidence(current: Entry, baseline: Sequence[Entry],
                      alpha: float) -> _Evidence | None:
    from scipy.stats import fisher_exact, norm

    ok1, n1 = current.ok_count, current.count
    ok2 = sum(e.ok_count for e in baseline)
    n2 = sum(e.count for e in baseline)
    if n1 == 0 or n2 == 0:
        return None
    p = float(fisher_exact([[ok1, n1 - ok1], [ok2, n2 - ok2]]).pvalue)
    z = float(norm.ppf(1 - alpha / 2))

    def wilson(k: int, n: int) -> tuple[float, float]:
        ph = k / n
        centre = (ph + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return centre - half, centre + half

    p1, p2 = ok1 / n1, ok2 / n2
    l1, u1 = wilson(ok1, n1)
    l2, u2 = wilson(ok2, n2)
    d = p1 - p2  # Newcombe's hybrid score interval of the difference
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return _Evidence(p1, p2, low, high, p)


def _evidence(metric: str, current: Entry, baseline: Sequence[Entry],
              alpha: float) -> _Evidence | None:
    if metric in QUANTILES:
        return _quantile_evidence(QUANTILES[metric], current, baseline, alpha)
    if metric == "mean":
        return _mean_evidence(current, baseline, alpha)
    if metric == "max":  # reported, not tested (see the module's docstring)
        return _Evidence(current.value("max"), max(b.value("max") for b in baseline),
                         None, None, None)
    if metric == "throughput":
        return _throughput_evidence(current, baseline, alpha)
    if metric == "success_ratio":
        return _success_evidence(current, baseline, alpha)
    if metric == "usd_per_million":
        cur, base = current.value(metric), _median([b.value(metric) for b in baseline])
        if current.cost is not None and current.cost.platform == "lambda":
            ev = _mean_evidence(current, baseline, alpha)
            if ev is None:
                return None
            return _Evidence(cur, base, ev.low, ev.high, ev.p_value, reason=ev.reason,
                             note="judged through mean latency (billed time's proxy)")
        ev = _throughput_evidence(current, baseline, alpha)
        inv = (None if ev.high is None or ev.high <= 0 else 1 / ev.high,
               None if ev.low is None or ev.low <= 0 else 1 / ev.low)
        return _Evidence(cur, base, inv[0], inv[1], ev.p_value, min_n=ev.min_n,
                         reason=ev.reason, note="judged through throughput (cost = price / rate)")
    return None


def _median(values: Sequence[float]) -> float:
    import statistics

    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


# --- verdicts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Noise:
    """Run-to-run spread of a metric over ``runs`` earlier runs: the standard deviation of its
    log (relative metrics) or of its value (absolute ones), and the band a change must leave."""

    sd: float
    runs: int
    band: float

    def text(self, relative: bool) -> str:
        spread = f"±{self.sd * 100:.1f}%" if relative else f"±{self.sd:.3g}"
        return f"run-to-run sd {spread} over {self.runs} runs"


def run_noise(values: Sequence[float], *, relative: bool, baseline_runs: int,
              alpha: float = DEFAULT_ALPHA,
              sampling_sd: Sequence[float | None] = ()) -> Noise | None:
    """The noise floor from earlier runs' values of one metric; None below MIN_NOISE_RUNS.

    The runs' spread holds each run's own sampling noise too, which the per-metric test
    already accounts for; when every run's sampling sd is known (``sampling_sd``, in the same
    space: of the log for relative metrics) its mean square is taken off, so the floor is the
    run-to-run part alone (counting sampling noise twice would hide real regressions)."""
    import statistics

    from scipy.stats import t as student_t

    pairs = [(v, sd) for v, sd in zip(values, list(sampling_sd) or [None] * len(values),
                                      strict=True)
             if math.isfinite(v) and (v > 0 or not relative)]
    if len(pairs) < MIN_NOISE_RUNS:
        return None
    ys = [math.log(v) if relative else v for v, _ in pairs]
    var = statistics.variance(ys)
    sds = [sd for _, sd in pairs]
    if all(sd is not None and math.isfinite(sd) for sd in sds):
        var = max(0.0, var - statistics.fmean(float(sd) ** 2 for sd in sds))  # type: ignore[arg-type]
    sd = math.sqrt(var)
    band = float(student_t.ppf(1 - alpha / 2, len(ys) - 1)) * sd * math.sqrt(
        1 + 1 / max(1, baseline_runs))
    return Noise(sd, len(ys), band)


def sampling_sd(entry: Entry, metric: str) -> float | None:
    """One run's own sampling sd of a metric (of its log for relative metrics), from what
    the history stored: a percentile's or the mean's 95% interval, the throughput window's
    intervals, the success ratio's count. None when the run cannot bound it."""
    z = 1.959964
    if metric in QUANTILES:  # (the mean's interval is not a sampling sd: see mean_estimate)
        est = entry.latency_s[metric]
        low, high = est.low, est.high
        if not (low > 0 and math.isfinite(high)):
            return None
        return (math.log(high) - math.log(low)) / (2 * z)
    # Throughput: not taken off. A run's interval rates move together with the machine's load
    # (a busy neighbour for a few seconds), so their spread is no clean sampling variance, and
    # taking it off left no floor: re-runs of the suites on a busy machine were called
    # 15-40% "faster" at p < 0.05.
    if metric == "success_ratio":
        n = entry.count
        if n == 0:
            return None
        p = entry.ok_count / n
        return math.sqrt(max(p * (1 - p), 1 / n**2) / n)
    return None


@dataclass(frozen=True)
class Change:
    """One metric of one test compared. ``change`` is relative (``+0.2`` = 20% higher) or an
    absolute difference; ``low``/``high`` its interval (None: unbounded)."""

    nodeid: str
    metric: str
    baseline: float
    current: float
    change: float
    relative: bool
    p_value: float | None
    significant: bool
    verdict: VerdictKind
    threshold: str
    low: float | None = None
    high: float | None = None
    reason: str | None = None
    samples_needed: int | None = None
    noise: Noise | None = None
    baseline_runs: int = 1

    def change_text(self) -> str:
        if math.isnan(self.change):
            return "n/a"
        return f"{self.change * 100:+.1f}%" if self.relative else f"{self.change:+.4g}"

    def interval_text(self) -> str:
        def one(v: float | None, side: str) -> str:
            if v is None:
                return "-∞" if side == "low" else "+∞"
            return f"{v * 100:+.0f}%" if self.relative else f"{v:+.3g}"

        return f"{one(self.low, 'low')} .. {one(self.high, 'high')}"


def _decide(nodeid: str, th: Threshold, ev: _Evidence, noise: Noise | None, alpha: float,
            baseline_runs: int, invalid: str | None) -> Change:
    relative = th.relative
    if relative:
        change = ev.current / ev.baseline - 1 if ev.baseline > 0 else math.nan
        centre = math.log(ev.current / ev.baseline) if ev.baseline > 0 and ev.current > 0 \
            else math.nan
        limit = math.log1p(th.limit)

        def to_space(v: float | None, side: str) -> float:
            if v is None or v <= 0:
                return -math.inf if side == "low" else math.inf
            return math.log(v)

        def from_space(v: float) -> float | None:
            return None if math.isinf(v) else math.expm1(v)
    else:
        change = ev.current - ev.baseline
        centre = change
        limit = th.limit

        def to_space(v: float | None, side: str) -> float:
            if v is None:
                return -math.inf if side == "low" else math.inf
            return v

        def from_space(v: float) -> float | None:
            return None if math.isinf(v) else v

    lo, hi = to_space(ev.low, "low"), to_space(ev.high, "high")
    band = noise.band if noise is not None else 0.0
    if band > 0 and not math.isnan(centre):
        lo = centre - math.hypot(centre - lo, band) if math.isfinite(lo) else lo
        hi = centre + math.hypot(hi - centre, band) if math.isfinite(hi) else hi
    bad_up = th.limit > 0  # a rise is bad (latency, cost); else a fall is (throughput...)
    p = ev.p_value
    significant = (p is not None and p < alpha and not math.isnan(centre)
                   and _clears_noise(centre, p, band, alpha))
    worse = centre > limit if bad_up else centre < limit
    better = centre < -limit if bad_up else centre > -limit
    ruled_out = hi <= limit if bad_up else lo >= limit  # the interval excludes a regression

    verdict: VerdictKind
    reason = ev.reason
    needed: int | None = None
    if invalid is not None and th.metric != "success_ratio":
        verdict, reason = "inconclusive", f"run INVALID ({invalid})"
    elif th.metric == "max":
        verdict = "inconclusive"
        reason = ("the maximum is one request: no test can tell its change from chance "
                  "(bound it with an SLO, or gate on p999)")
    elif math.isnan(centre):
        verdict, reason = "inconclusive", reason or "no value to compare on one side"
    elif significant and worse:
        verdict = "regression"
    elif significant and better:
        verdict = "improvement"
    elif ruled_out:
        verdict = "unchanged"
    else:
        verdict = "inconclusive"
        needed, why = _what_would_decide(ev, centre, lo, hi, limit, bad_up, band, worse,
                                         p, alpha)
        reason = reason or why
    if ev.note:
        reason = f"{reason}; {ev.note}" if reason else ev.note
    return Change(nodeid, th.metric, ev.baseline, ev.current, change, relative, p,
                  significant, verdict, th.text(), from_space(lo), from_space(hi), reason,
                  needed, noise, baseline_runs)


def _clears_noise(centre: float, p: float, band: float, alpha: float) -> bool:
    """With a noise floor, a change must clear sampling and run-to-run noise together, not
    each alone (two tests passed one by one can both hold while their sum does not). The
    sampling part is the half-width the metric's own test implies (its p-value read as a
    normal z), so each metric keeps its test; the mean's interval, widened for an unseen
    tail, would never clear."""
    if band == 0:
        return True
    from scipy.stats import norm

    z_p = float(norm.isf(p / 2)) if p > 0 else math.inf
    sampling = float(norm.isf(alpha / 2)) * abs(centre) / z_p
    return abs(centre) > math.hypot(sampling, band)


def _what_would_decide(ev: _Evidence, centre: float, lo: float, hi: float, limit: float,
                       bad_up: bool, band: float, worse: bool, p: float | None,
                       alpha: float) -> tuple[int | None, str]:
    n = ev.min_n
    if not (math.isfinite(lo) and math.isfinite(hi)):
        if n is not None:
            return n, (f"the interval is unbounded at this sample size: at least {n} requests "
                       "per run (on each side) would bound it")
        return None, "the interval is unbounded at this sample size"
    if band > 0 and abs(limit) <= band:
        return None, ("run-to-run noise is wider than the threshold: pool more runs "
                      "(median:N) or widen the threshold")
    if worse:
        what = f"beyond the threshold but not significant (p={p:.3g})" if p is not None and \
            p >= alpha else "beyond the threshold but within run-to-run noise"
        return None, what
    margin = abs(limit - centre)
    half = (hi - centre) if bad_up else (centre - lo)
    half = math.sqrt(max(0.0, half**2 - band**2))  # the part that shrinks with samples
    need_half = math.sqrt(max(0.0, margin**2 - band**2)) if band else margin
    # Intervals narrow as 1/sqrt(n): the factor by which the per-run sample must grow.
    factor = (half / need_half) ** 2 if need_half > 0 else math.inf
    side = "above" if bad_up else "below"
    why = f"the interval reaches {side} the threshold"
    if math.isfinite(factor):
        times = f"{factor:.1f}" if factor < 10 else f"{factor:,.0f}"
        return None, f"{why}: about {times}x the requests per run would settle it"
    return None, why


@dataclass(frozen=True)
class Comparison:
    reference: str
    changes: tuple[Change, ...]
    no_baseline: tuple[str, ...]
    machine_differs: bool
    compared: int = 0

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.verdict == "regression"]

    @property
    def inconclusive(self) -> list[Change]:
        return [c for c in self.changes if c.verdict == "inconclusive"]

    def count(self, verdict: str) -> int:
        return sum(1 for c in self.changes if c.verdict == verdict)

    def tally(self) -> str:
        """``2 regression, 1 improvement, 10 unchanged, 3 inconclusive``."""
        return ", ".join(f"{self.count(v)} {v}" for v in VERDICTS)


def select_baseline_runs(runs: Sequence[Run], ref: str) -> list[Run]:
    """Runs that make up the baseline, newest first: ``last``, ``median:N``, a run id or name."""
    if ref == "last":
        return list(reversed(runs))
    if ref.startswith("median:"):
        baseline_size(ref)
        return list(reversed(runs))
    from .history import find_run

    find_run(runs, ref)  # LookupError when no run has that id or name
    return list(reversed([r for r in runs if ref in (r.run_id, r.name)]))


def baseline_size(ref: str) -> int:
    """How many runs a reference pools: N for ``median:N``, else 1."""
    if not ref.startswith("median:"):
        return 1
    try:
        n = int(ref.split(":", 1)[1])
    except ValueError:
        raise ValueError(f"cannot read {ref!r}: expected median:N") from None
    if n < 1:
        raise ValueError("median:N needs N >= 1")
    return n


def compare_entries(current: Entry, baseline: Sequence[Entry],
                    thresholds: Sequence[Threshold], *, alpha: float = DEFAULT_ALPHA,
                    earlier: Sequence[Entry] = ()) -> list[Change]:
    """Compare one test's entry with its baseline entries (pooled). ``earlier``: the newest
    entries of the same test in the history (baseline included), for the noise floor."""
    changes = []
    history = list(earlier) or list(baseline)
    invalid = current.invalid_reason or next(
        (f"baseline: {b.invalid_reason}" for b in baseline if b.invalid_reason), None)
    for th in thresholds:
        ev = _evidence(th.metric, current, baseline, alpha)
        if ev is None or math.isnan(ev.current) or math.isnan(ev.baseline):
            continue
        runs = history[:NOISE_RUNS]
        noise = run_noise([e.value(th.metric) for e in runs], relative=th.relative,
                          baseline_runs=len(baseline), alpha=alpha,
                          sampling_sd=[sampling_sd(e, th.metric) for e in runs])
        changes.append(_decide(current.nodeid, th, ev, noise, alpha, len(baseline), invalid))
    return changes


def compare_run(current_entries: Sequence[Entry], runs: Sequence[Run],
                *, ref: str = "last", thresholds: Sequence[Threshold],
                machine_id: str | None = None, alpha: float = DEFAULT_ALPHA) -> Comparison:
    from .history import fingerprint_id

    candidates = select_baseline_runs(runs, ref)
    want = baseline_size(ref)
    everything = list(reversed(runs))
    changes: list[Change] = []
    missing: list[str] = []
    machine_differs = False
    compared = 0
    for entry in current_entries:
        found: list[Entry] = []
        for run in candidates:
            old = run.entry(entry.key)
            if old is not None:
                found.append(old)
                if machine_id is not None and fingerprint_id(run.machine) != machine_id:
                    machine_differs = True
            if len(found) >= want:
                break
        if not found:
            missing.append(entry.nodeid)
            continue
        compared += 1
        earlier = list(itertools.islice(
            (e for e in (r.entry(entry.key) for r in everything) if e is not None),
            NOISE_RUNS))
        changes.extend(compare_entries(entry, found, thresholds, alpha=alpha, earlier=earlier))
    return Comparison(ref, tuple(changes), tuple(missing), machine_differs, compared)


def render_comparison(cmp: Comparison) -> list[str]:
    from .report import format_table

    def fmt(metric: str, v: float) -> str:
        return parse_metric(metric).format(v)

    header = ("test", "metric", "baseline", "current", "change", "95% interval", "p-value",
              "threshold", "verdict")
    rows = [(c.nodeid, c.metric, fmt(c.metric, c.baseline), fmt(c.metric, c.current),
             c.change_text(), c.interval_text(),
             "n/a" if c.p_value is None else f"{c.p_value:.3g}", c.threshold,
             c.verdict.upper() if c.verdict in ("regression", "improvement") else c.verdict)
            for c in cmp.changes]
    lines = format_table(header, rows)
    notes = [c for c in cmp.changes if c.verdict == "inconclusive" and c.reason]
    if notes:
        lines.append("")
        lines.append("inconclusive (neither a regression nor its absence could be shown):")
        lines += [f"  {c.nodeid} {c.metric}: {c.reason}" for c in notes]
    return lines
