"""The end-of-session summary table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .result import Result
from .slo import Verdict, format_value


@dataclass(frozen=True)
class SummaryRow:
    nodeid: str
    target: str
    workload: str
    n: int
    p50_s: float
    p99_s: float
    throughput: float
    success_ratio: float
    verdict: str  # "pass", "fail", "inconclusive" or "-" when no SLO was set

    @classmethod
    def of(cls, nodeid: str, result: Result, verdicts: Sequence[Verdict]) -> SummaryRow:
        return cls(nodeid, result.target, str(result.workload.get("str", "")), result.count,
                   result.latency.p50.value, result.latency.p99.value, result.throughput,
                   result.success_ratio, overall_verdict(verdicts))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SummaryRow:
        return cls(**data)


def overall_verdict(verdicts: Iterable[Verdict]) -> str:
    outcomes = {v.outcome for v in verdicts}
    if not outcomes:
        return "-"
    for worst in ("fail", "inconclusive"):
        if worst in outcomes:
            return worst
    return "pass"


def render_table(rows: Sequence[SummaryRow]) -> list[str]:
    header = ("test", "target", "workload", "n", "p50", "p99", "throughput", "success", "SLO")
    body = [
        (r.nodeid, r.target, r.workload, str(r.n), format_value("latency", r.p50_s),
         format_value("latency", r.p99_s), format_value("rate", r.throughput),
         f"{r.success_ratio:.4f}", r.verdict)
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    right = {3, 4, 5, 6, 7}

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(b) for b in body)]
