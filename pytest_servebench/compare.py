"""Noise-aware comparison of a run against a baseline from the history.

A change is a regression only when it passes its threshold AND is statistically significant
(as asv does before calling a regression): a latency percentile by a quantile test on the
stored histograms (Fisher's exact test on the counts above and below the pooled percentile; for
p50 that is Mood's median test), so a slower tail is seen even when the median is not; mean and
max by a Mann-Whitney U test; throughput by a conditional binomial test on completion counts;
success ratio by Fisher's exact test.
Re-running an unchanged target on a noisy machine therefore passes.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .histogram import LatencyHistogram

DEFAULT_FAIL_SPEC = "p99:10%,throughput:-5%,success_ratio:-0.01"
DEFAULT_ALPHA = 0.05
_LATENCY = ("p50", "p90", "p95", "p99", "p999", "mean", "max")
_QUANTILE = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}
_SPEC = re.compile(r"^\s*([a-z0-9_]+)\s*:\s*([-+]?[0-9]*\.?[0-9]+)\s*(%?)\s*$")


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
        if metric not in (*_LATENCY, "throughput", "success_ratio", "usd_per_million"):
            raise ValueError(f"no comparison for metric {metric!r}")
        if value == 0:
            raise ValueError(f"threshold {part!r}: a zero threshold flags every change")
        out.append(Threshold(metric, value / 100 if pct else value, pct))
    return out


def metric_value(entry: Mapping[str, Any], metric: str) -> float:
    if metric in _LATENCY:
        return float(entry["latency_s"][metric]["value"])
    if metric == "usd_per_million":
        cost = entry.get("cost")
        return float(cost["usd_per_million"]) if cost else math.nan
    return float(entry[metric])


def _histogram_samples(entries: Sequence[Mapping[str, Any]]) -> Any:
    import numpy as np

    merged = LatencyHistogram()
    for e in entries:
        merged.merge(LatencyHistogram.from_dict(e["histogram"]))
    pairs = merged.samples()
    if not pairs:
        return np.array([])
    values, counts = zip(*pairs, strict=True)
    return np.repeat(np.array(values), np.array(counts))


def p_value(metric: str, current: Mapping[str, Any],
            baseline: Sequence[Mapping[str, Any]]) -> float | None:
    """Two-sided p-value that current and baseline differ in ``metric``; None if untestable."""
    if metric in _QUANTILE:
        return _quantile_p_value(_QUANTILE[metric], current, baseline)
    if metric in _LATENCY or (metric == "usd_per_million"
                              and (current.get("cost") or {}).get("platform") == "lambda"):
        from scipy.stats import mannwhitneyu

        x, y = _histogram_samples([current]), _histogram_samples(baseline)
        if len(x) == 0 or len(y) == 0:
            return None
        return float(mannwhitneyu(x, y, alternative="two-sided").pvalue)
    if metric in ("throughput", "usd_per_million"):
        from scipy.stats import binomtest

        def counts(e: Mapping[str, Any]) -> tuple[int, float]:
            ok, tput = int(e["ok_count"]), float(e["throughput"])
            return ok, (ok / tput if tput > 0 else 0.0)

        n1, t1 = counts(current)
        base = [counts(e) for e in baseline]
        n2, t2 = sum(n for n, _ in base), sum(t for _, t in base)
        if n1 + n2 == 0 or t1 <= 0 or t2 <= 0:
            return None
        return float(binomtest(n1, n1 + n2, t1 / (t1 + t2)).pvalue)
    if metric == "success_ratio":
        from scipy.stats import fisher_exact

        ok1, n1 = int(current["ok_count"]), int(current["count"])
        ok2 = sum(int(e["ok_count"]) for e in baseline)
        n2 = sum(int(e["count"]) for e in baseline)
        return float(fisher_exact([[ok1, n1 - ok1], [ok2, n2 - ok2]]).pvalue)
    return None


def _quantile_p_value(q: float, current: Mapping[str, Any],
                      baseline: Sequence[Mapping[str, Any]]) -> float | None:
    """Do the two samples share their ``q``-quantile? Split both at the pooled quantile and test
    the 2x2 table of counts above/not above it (a generalised Mood's median test)."""
    import numpy as np
    from scipy.stats import fisher_exact

    x, y = _histogram_samples([current]), _histogram_samples(baseline)
    if len(x) == 0 or len(y) == 0:
        return None
    cut = float(np.quantile(np.concatenate([x, y]), q))
    above_x, above_y = int((x > cut).sum()), int((y > cut).sum())
    table = [[above_x, len(x) - above_x], [above_y, len(y) - above_y]]
    return float(fisher_exact(table).pvalue)


@dataclass(frozen=True)
class Change:
    nodeid: str
    metric: str
    baseline: float
    current: float
    change: float
    relative: bool
    p_value: float | None
    significant: bool
    verdict: str  # "regression", "improvement", "unchanged"
    threshold: str

    def change_text(self) -> str:
        if math.isnan(self.change):
            return "n/a"
        return f"{self.change * 100:+.1f}%" if self.relative else f"{self.change:+.4g}"


def compare_entries(current: Mapping[str, Any], baseline: Sequence[Mapping[str, Any]],
                    thresholds: Sequence[Threshold], *, alpha: float = DEFAULT_ALPHA
                    ) -> list[Change]:
    changes = []
    for th in thresholds:
        cur = metric_value(current, th.metric)
        base = statistics.median(metric_value(b, th.metric) for b in baseline)
        if math.isnan(cur) or math.isnan(base):
            continue
        if th.relative:
            delta = (cur - base) / base if base else (math.inf if cur else 0.0)
        else:
            delta = cur - base
        p = p_value(th.metric, current, baseline)
        significant = p is not None and p < alpha
        worse = delta > th.limit if th.limit > 0 else delta < th.limit
        better = delta < -th.limit if th.limit > 0 else delta > -th.limit
        verdict = "unchanged"
        if significant and worse:
            verdict = "regression"
        elif significant and better:
            verdict = "improvement"
        changes.append(Change(str(current["nodeid"]), th.metric, base, cur, delta, th.relative,
                              p, significant, verdict, th.text()))
    return changes


@dataclass(frozen=True)
class Comparison:
    reference: str
    changes: tuple[Change, ...]
    no_baseline: tuple[str, ...]
    machine_differs: bool

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.verdict == "regression"]


def select_baseline_runs(runs: Sequence[Mapping[str, Any]], ref: str) -> list[Mapping[str, Any]]:
    """Runs that make up the baseline, newest first: ``last``, ``median:N``, a run id or name."""
    if ref == "last":
        return list(reversed(runs))
    if ref.startswith("median:"):
        try:
            n = int(ref.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"cannot read {ref!r}: expected median:N") from None
        if n < 1:
            raise ValueError("median:N needs N >= 1")
        return list(reversed(runs))
    picked = [r for r in runs if r.get("run_id") == ref or r.get("name") == ref]
    if not picked:
        raise LookupError(f"no run with id or name {ref!r} in the history")
    return list(reversed(picked))


def compare_run(current_entries: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]],
                *, ref: str = "last", thresholds: Sequence[Threshold],
                machine_id: str | None = None, alpha: float = DEFAULT_ALPHA) -> Comparison:
    from .history import fingerprint_id

    candidates = select_baseline_runs(runs, ref)
    want = int(ref.split(":", 1)[1]) if ref.startswith("median:") else 1
    changes: list[Change] = []
    missing: list[str] = []
    machine_differs = False
    for entry in current_entries:
        found: list[Mapping[str, Any]] = []
        for run in candidates:
            for old in run.get("entries", []):
                if old["key"] == entry["key"]:
                    found.append(old)
                    if machine_id is not None and fingerprint_id(run.get("machine", {})) \
                            != machine_id:
                        machine_differs = True
                    break
            if len(found) >= want:
                break
        if not found:
            missing.append(str(entry["nodeid"]))
            continue
        changes.extend(compare_entries(entry, found, thresholds, alpha=alpha))
    return Comparison(ref, tuple(changes), tuple(missing), machine_differs)


def render_comparison(cmp: Comparison) -> list[str]:
    from .report import format_table
    from .slo import format_value

    def fmt(metric: str, v: float) -> str:
        kind = "latency" if metric in _LATENCY else {"throughput": "rate",
                                                     "usd_per_million": "usd"}.get(metric, "ratio")
        return format_value(kind, v)

    header = ("test", "metric", "baseline", "current", "change", "p-value", "threshold",
              "verdict")
    rows = [(c.nodeid, c.metric, fmt(c.metric, c.baseline), fmt(c.metric, c.current),
             c.change_text(), "n/a" if c.p_value is None else f"{c.p_value:.3g}", c.threshold,
             c.verdict.upper() if c.verdict != "unchanged" else "unchanged")
            for c in cmp.changes]
    lines = format_table(header, rows)
    for nodeid in cmp.no_baseline:
        lines.append(f"{nodeid}: no baseline in the history ({cmp.reference})")
    return lines
