"""Terminal tables: the end-of-session summary, built from the run's history entries."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .metrics import format_value

if TYPE_CHECKING:
    from .history import Entry


def overall_verdict(outcomes: Iterable[str]) -> str:
    """"fail" beats "inconclusive" beats "pass"; "-" when no SLO was judged."""
    seen = set(outcomes)
    if not seen:
        return "-"
    for worst in ("fail", "inconclusive"):
        if worst in seen:
            return worst
    return "pass"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], *,
                 right: Iterable[int] = ()) -> list[str]:
    """Columns padded to their widest cell; ``right`` names right-aligned columns."""
    align_right = set(right)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in align_right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


def render_summary(entries: Sequence[Entry]) -> list[str]:
    """One row per benchmarked result: target, workload, n, p50, p99, throughput, success, SLO;
    a schedule-lag column when a run followed a schedule, and a line for each INVALID run (its
    load generator fell behind) and each run with timed-out requests."""
    ordered = sorted(entries, key=lambda e: e.nodeid)
    lagged = any(e.schedule_lag is not None for e in ordered)
    header = ["test", "target", "workload", "n", "p50", "p99", "throughput", "success", "SLO"]
    if lagged:
        header.insert(7, "lag p99")
    rows = []
    for e in ordered:
        row = [e.nodeid, e.target, str(e.workload.get("str", "")), str(e.count),
               format_value("latency", e.latency_s["p50"].value),
               format_value("latency", e.latency_s["p99"].value),
               format_value("throughput", e.throughput), f"{e.success_ratio:.4f}",
               "INVALID" if not e.valid else overall_verdict(v.outcome for v in e.slo)]
        if lagged:
            lag = e.schedule_lag
            row.insert(7, format_value("latency", lag.p99_s) if lag is not None else "-")
        rows.append(row)
    right = {3, 4, 5, 6, 7} | ({8} if lagged else set())
    lines = format_table(header, rows, right=right)
    for e in ordered:
        if not e.valid:
            lines.append(f"{e.nodeid}: INVALID: {e.invalid_reason}; its latency and "
                         "throughput verdicts are inconclusive")
        if e.censored:
            lines.append(f"{e.nodeid}: {e.censored} request(s) timed out; they count in "
                         f"the latency percentiles at no less than the timeout "
                         f"({format_value('latency', e.timeout_s or math.nan)})")
    return lines
