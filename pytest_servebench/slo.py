"""Service-level objectives: parse ``"p99 < 200ms"`` and judge it against a result.

A bound on a quantity that carries a confidence interval (percentiles, the mean) passes only when
the whole interval meets it, fails when the whole interval breaks it, and is *inconclusive* when
the interval straddles the bound; the message then says how many samples would settle it. Rates,
ratios, maxima and counts are judged on the measured value.

>>> parse_slo("p99 < 200ms")
SLO(metric='p99', op='<', bound=0.2, text='p99 < 200ms')
>>> round(parse_slo("success_ratio >= 99.9%").bound, 6)
0.999
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .stats import Estimate, mean_samples_needed, samples_to_settle

if TYPE_CHECKING:
    from .result import Result

_EXPR = re.compile(
    r"^\s*(?P<metric>[a-z_][a-z0-9_.]*)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<num>[-+]?[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(?P<unit>[a-zµ%/$]*)\s*$",
    re.IGNORECASE,
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "min": 60.0}
_RATE_UNITS = {"", "rps", "/s", "req/s", "qps", "ips"}
_RATIO_METRICS = {"success_ratio"}
_RATE_METRICS = {"throughput"}
_COUNT_METRICS = {"error_count"}
_USD_METRICS_PREFIX = "usd_"
# Quantities that carry an interval and are judged on it.
_INTERVAL = re.compile(r"^(cold_start_|init_duration_)?(p\d+(\.\d+)?|mean)$|^(cold_start|"
                       r"init_duration)$")


class SLOSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class SLO:
    metric: str
    op: str
    bound: float
    text: str

    @property
    def kind(self) -> Literal["latency", "ratio", "rate", "count", "usd"]:
        return _kind(self.metric)

    def format_value(self, value: float) -> str:
        return format_value(self.kind, value)


def _kind(metric: str) -> Literal["latency", "ratio", "rate", "count", "usd"]:
    if metric in _RATIO_METRICS:
        return "ratio"
    if metric in _RATE_METRICS:
        return "rate"
    if metric in _COUNT_METRICS:
        return "count"
    if metric.startswith(_USD_METRICS_PREFIX):
        return "usd"
    return "latency"


def format_value(kind: str, value: float) -> str:
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
    if kind == "rate":
        return f"{value:,.0f}/s" if abs(value) >= 1000 else f"{value:.4g}/s"
    if kind == "usd":
        return f"${value:.4g}"
    return f"{value:g}"


def parse_slo(text: str) -> SLO:
    """Read ``METRIC OP NUMBER[UNIT]``; units: s, ms, us for latency; % for ratios; /s or rps
    for throughput; usd or $ for cost."""
    m = _EXPR.match(text)
    if not m:
        raise SLOSyntaxError(
            f"cannot read SLO {text!r}: expected 'METRIC OP VALUE', e.g. 'p99 < 200ms', "
            "'success_ratio >= 0.999', 'throughput > 50/s'"
        )
    metric, op, unit = m["metric"].lower(), m["op"], m["unit"]
    num = float(m["num"])
    kind = _kind(metric)
    pct = re.fullmatch(r"(?:cold_start_|init_duration_)?p(\d+(?:\.\d+)?)", metric)
    if pct:  # read as result.quantile_of reads it: p999 is 99.9, p9999 99.99
        digits = pct[1]
        if "." not in digits and len(digits) > 2 and digits.startswith("99"):
            digits = "99." + digits[2:]
        if float(digits) > 100:
            raise SLOSyntaxError(f"{text!r}: no percentile above 100 (p50, p99, p999 = p99.9)")
    if kind == "latency":
        if unit.lower() not in _TIME_UNITS and unit not in _TIME_UNITS:
            raise SLOSyntaxError(f"{text!r}: unknown time unit {unit!r} (use s, ms or us)")
        bound = num * _TIME_UNITS.get(unit, _TIME_UNITS.get(unit.lower(), 1.0))
        if bound < 0:
            raise SLOSyntaxError(f"{text!r}: a latency bound cannot be negative")
    elif kind == "ratio":
        if unit not in ("", "%"):
            raise SLOSyntaxError(f"{text!r}: a ratio takes no unit or %")
        bound = num / 100 if unit == "%" else num
        if not 0 <= bound <= 1:
            raise SLOSyntaxError(f"{text!r}: a ratio lies between 0 and 1 (or 0% and 100%)")
    elif kind == "rate":
        if unit.lower() not in _RATE_UNITS:
            raise SLOSyntaxError(f"{text!r}: throughput takes /s, rps or no unit")
        bound = num
    elif kind == "usd":
        if unit.lower() not in ("", "usd", "$"):
            raise SLOSyntaxError(f"{text!r}: a cost takes usd, $ or no unit")
        bound = num
    else:
        if unit:
            raise SLOSyntaxError(f"{text!r}: a count takes no unit")
        bound = num
    return SLO(metric, op, bound, text.strip())


Outcome = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    slo: SLO
    outcome: Outcome
    estimate: Estimate | None
    confidence: float
    judged_on: Literal["interval", "point"]
    samples_needed: int | None = None
    reason: str | None = None

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"

    def line(self) -> str:
        """One readable line: bound, outcome, measured value, interval, samples."""
        slo, est = self.slo, self.estimate
        head = f"{slo.text}: {self.outcome.upper()}"
        if est is None:
            return f"{head} ({self.reason})"
        text = f"{head}: measured {slo.format_value(est.value)}"
        if self.judged_on == "interval":
            text += (f" ({self.confidence:.0%} CI {slo.format_value(est.low)} .. "
                     f"{slo.format_value(est.high)})")
        text += f", bound {slo.op} {slo.format_value(slo.bound)}, n={est.n}"
        if self.outcome == "inconclusive" and (self.reason or "").startswith("run INVALID"):
            return f"{text}; {self.reason}"
        if self.outcome == "inconclusive":
            text += "; the interval straddles the bound"
            if self.samples_needed is not None:
                text += f": about {self.samples_needed} samples would settle it"
            text += " (or judge on point estimates with --servebench-slo-estimate=point)"
        if self.reason:
            text += f"; {self.reason}"
        return text


def evaluate(slo: SLO, result: Result, *, point: bool = False) -> Verdict:
    """Judge one bound. Failures name the errors behind them (an HTTP 415 or a refused
    connection shows as such, not as "n/a"), and a latency or throughput bound on an INVALID
    run (its load generator fell behind) is inconclusive whatever the numbers say."""
    errors = f"; errors: {result.errors_text()}" if result.errors else ""
    try:
        est = result.metric(slo.metric)
    except LookupError as exc:
        return Verdict(slo, "fail", None, result.confidence, "point", reason=f"{exc}{errors}")
    if math.isnan(est.value):
        return Verdict(slo, "fail", est, result.confidence, "point",
                       reason=f"no successful request was measured ({result.count} sent)"
                              f"{errors}")
    judge = _OPS[slo.op]
    use_interval = not point and bool(_INTERVAL.match(slo.metric))
    if not use_interval:
        outcome: Outcome = "pass" if judge(est.value, slo.bound) else "fail"
        verdict = Verdict(slo, outcome, est, result.confidence, "point",
                          reason=errors[2:] if outcome == "fail" and errors else None)
    else:
        upper_bound = slo.op in ("<", "<=")
        worst, best = (est.high, est.low) if upper_bound else (est.low, est.high)
        if judge(worst, slo.bound):
            outcome = "pass"
        elif not judge(best, slo.bound):
            outcome = "fail"
        else:
            outcome = "inconclusive"
        needed = _samples_needed(slo, est, result) if outcome == "inconclusive" else None
        verdict = Verdict(slo, outcome, est, result.confidence, "interval",
                          samples_needed=needed,
                          reason=errors[2:] if outcome != "pass" and errors else None)
    invalid = result.invalid_reason
    if invalid is not None and slo.kind in ("latency", "rate") \
            and verdict.outcome != "inconclusive":
        return Verdict(slo, "inconclusive", est, result.confidence, verdict.judged_on,
                       reason=f"run INVALID ({invalid}); it would have been "
                              f"{verdict.outcome}")
    return verdict


def _samples_needed(slo: SLO, est: Estimate, result: Result) -> int | None:
    from .result import quantile_of

    name = slo.metric
    summary = result.latency
    if name.startswith(("cold_start", "init_duration")):
        cs = result.cold_starts
        if cs is None:
            return None
        sub = cs.latency if name.startswith("cold_start") else cs.init_duration
        if sub is None:
            return None
        summary = sub
        name = name.split("_", 2)[-1] if name.count("_") >= 2 else "mean"
    q = quantile_of(name)
    if q is not None and slo.op in ("<", "<="):
        # MLPerf's rule: samples needed so that, with the exceedances seen so far, the upper
        # order statistic falls at or below the bound.
        return max(est.n + 1, samples_to_settle(q, summary.count_above(slo.bound),
                                                result.confidence))
    if name == "mean" and slo.op in ("<", "<="):
        needed = mean_samples_needed(est, slo.bound, upper_bound=summary.upper_bound_s,
                                     confidence=result.confidence)
        return None if needed is None else max(est.n + 1, needed)
    if name == "mean" and math.isfinite(est.low) and est.value != slo.bound:
        half = est.value - est.low
        return max(est.n + 1, math.ceil(est.n * (half / abs(est.value - slo.bound)) ** 2))
    return None


class SLOFailure(AssertionError):
    """Raised when SLOs are not met; ``str()`` has one line per bound."""

    def __init__(self, failed: Sequence[Verdict], all_verdicts: Sequence[Verdict]) -> None:
        self.failed = list(failed)
        self.verdicts = list(all_verdicts)
        super().__init__("SLO not met:\n" + "\n".join("  " + v.line() for v in self.failed))
