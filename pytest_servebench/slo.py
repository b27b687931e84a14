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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from .metrics import Kind, format_value, parse_bound, parse_metric
from .stats import Estimate, mean_samples_needed, samples_to_settle

_EXPR = re.compile(
    r"^\s*(?P<metric>[a-z_][a-z0-9_.]*)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<num>[-+]?[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(?P<unit>[a-zµ%/$]*)\s*$",
    re.IGNORECASE,
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


class SLOSyntaxError(ValueError):
    pass


class Sample(Protocol):
    """The latency sample a metric was read from (a ``result.LatencySummary``)."""

    @property
    def upper_bound_s(self) -> float: ...

    def count_above(self, bound_s: float) -> int: ...


class Judged(Protocol):
    """What an SLO is judged against (a ``result.Result``). SLOs know results only through
    this, so ``result`` may use this module and not the other way round."""

    @property
    def confidence(self) -> float: ...

    @property
    def count(self) -> int: ...

    @property
    def errors(self) -> Mapping[str, int]: ...

    @property
    def invalid_reason(self) -> str | None: ...

    def errors_text(self) -> str: ...

    def metric(self, name: str) -> Estimate: ...

    def summary_of(self, name: str) -> Sample | None: ...


@dataclass(frozen=True)
class SLO:
    metric: str
    op: str
    bound: float
    text: str

    @property
    def kind(self) -> Kind:
        return parse_metric(self.metric).kind

    def format_value(self, value: float) -> str:
        return format_value(self.kind, value)


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
    try:
        kind = parse_metric(metric).kind
    except ValueError:  # p101: read as metrics.quantile_of reads it (p999 is 99.9)
        raise SLOSyntaxError(
            f"{text!r}: no percentile above 100 (p50, p99, p999 = p99.9)") from None
    try:
        bound = parse_bound(kind, float(m["num"]), unit)
    except ValueError as exc:
        raise SLOSyntaxError(f"{text!r}: {exc}") from None
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


def evaluate(slo: SLO, result: Judged, *, point: bool = False) -> Verdict:
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
    use_interval = not point and parse_metric(slo.metric).interval
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
    if invalid is not None and slo.kind in ("latency", "throughput") \
            and verdict.outcome != "inconclusive":
        return Verdict(slo, "inconclusive", est, result.confidence, verdict.judged_on,
                       reason=f"run INVALID ({invalid}); it would have been "
                              f"{verdict.outcome}")
    return verdict


def _samples_needed(slo: SLO, est: Estimate, result: Judged) -> int | None:
    metric = parse_metric(slo.metric)
    sample = result.summary_of(slo.metric)
    if sample is None:
        return None
    if metric.quantile is not None and slo.op in ("<", "<="):
        # MLPerf's rule: samples needed so that, with the exceedances seen so far, the upper
        # order statistic falls at or below the bound.
        return max(est.n + 1, samples_to_settle(metric.quantile, sample.count_above(slo.bound),
                                                result.confidence))
    if metric.stat == "mean" and slo.op in ("<", "<="):
        needed = mean_samples_needed(est, slo.bound, upper_bound=sample.upper_bound_s,
                                     confidence=result.confidence)
        return None if needed is None else max(est.n + 1, needed)
    if metric.stat == "mean" and math.isfinite(est.low) and est.value != slo.bound:
        half = est.value - est.low
        return max(est.n + 1, math.ceil(est.n * (half / abs(est.value - slo.bound)) ** 2))
    return None


def check(result: Judged, *slos: str | SLO, point: bool) -> list[Verdict]:
    """Judge every bound (``Result.check`` calls this); raise ``SLOFailure`` with one line per
    bound that is not met, else return the verdicts."""
    __tracebackhide__ = True
    verdicts = [evaluate(parse_slo(s) if isinstance(s, str) else s, result, point=point)
                for s in slos]
    bad = [v for v in verdicts if not v.passed]
    if bad:
        raise SLOFailure(bad, verdicts)
    return verdicts


class SLOFailure(AssertionError):
    """Raised when SLOs are not met; ``str()`` has one line per bound."""

    def __init__(self, failed: Sequence[Verdict], all_verdicts: Sequence[Verdict]) -> None:
        self.failed = list(failed)
        self.verdicts = list(all_verdicts)
        super().__init__("SLO not met:\n" + "\n".join("  " + v.line() for v in self.failed))
