"""What CI tools read, from history entries (pure functions; no pytest session needed):

- ``junit_properties``: name/value pairs for a test's JUnit XML ``<properties>`` (the plugin
  adds them to ``item.user_properties``, as ``record_property`` does);
- ``markdown_summary``: a Markdown table for ``$GITHUB_STEP_SUMMARY``;
- ``github_action_benchmark``: github-action-benchmark's ``customSmallerIsBetter`` JSON;
- ``pytest_benchmark_entries``: entries in pytest-benchmark's JSON shape, so that
  ``pytest-benchmark compare`` and the dashboards that read its files see them.

>>> from pytest_servebench.history import make_entry
>>> from pytest_servebench.records import Record, Recording
>>> from pytest_servebench.result import summarize
>>> from pytest_servebench.target import Reply
>>> rows = tuple(Record(i, False, i * .01, i * .01, i * .01 + .02, Reply(ok=True))
...              for i in range(50))
>>> r = summarize(Recording(rows, 0.0, 0.0, .51, .51, 1, False), target="http",
...               target_profile={}, workload={"str": "closed(c=1, 50 req)"})
>>> e = make_entry("t.py::test_a", r, [], "local")
>>> dict(junit_properties(e))["servebench_p50_ms"]
'20'
>>> [b["name"] for b in github_action_benchmark([e])]
['t.py::test_a p50', 't.py::test_a p99']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .metrics import format_value
from .report import overall_verdict

if TYPE_CHECKING:
    from .history import Entry, Run


def _verdict(e: Entry) -> str:
    return "INVALID" if not e.valid else overall_verdict(v.outcome for v in e.slo)


def _number(value: float, digits: int = 6) -> str:
    return "" if not math.isfinite(value) else f"{value:.{digits}g}"


def junit_properties(e: Entry, *, prefix: str = "servebench_") -> list[tuple[str, str]]:
    """A result as JUnit properties: p50 and p99 (ms), throughput (/s), success ratio, cost
    ($ per million requests, when priced) and the SLO verdict. A test with several results
    gets one set each, the later ones named ``..._2``, ``..._3`` by the caller."""
    props = [
        (f"{prefix}target", e.target),
        (f"{prefix}workload", str(e.workload.get("str", ""))),
        (f"{prefix}p50_ms", _number(e.latency_s["p50"].value * 1e3)),
        (f"{prefix}p99_ms", _number(e.latency_s["p99"].value * 1e3)),
        (f"{prefix}throughput_per_s", _number(e.throughput)),
        (f"{prefix}success_ratio", _number(e.success_ratio)),
    ]
    if e.cost is not None:
        props.append((f"{prefix}usd_per_million", _number(e.cost.usd_per_million)))
    props.append((f"{prefix}verdict", _verdict(e)))
    return props


def item_properties(entries: Sequence[Entry]) -> list[tuple[str, str]]:
    """The JUnit properties of one test's results: the first result's names plain, the
    second's ending ``_2``, and so on."""
    props: list[tuple[str, str]] = []
    for i, e in enumerate(entries):
        suffix = "" if i == 0 else f"_{i + 1}"
        props += [(name + suffix, value) for name, value in junit_properties(e)]
    return props


def append_step_summary(path: str, entries: Sequence[Entry]) -> None:
    """Append the Markdown table to GitHub's job summary file (``$GITHUB_STEP_SUMMARY``)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(markdown_summary(entries) + "\n")


def markdown_summary(entries: Sequence[Entry], *, title: str = "servebench") -> str:
    """One Markdown table for GitHub's job summary: a row per result, its test's id in code."""
    priced = any(e.cost is not None for e in entries)
    header = ["test", "target", "workload", "n", "p50", "p99", "throughput", "success", "SLO"]
    if priced:
        header.insert(8, "$/M req")
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if h in ("n", "p50", "p99", "throughput", "success",
                                            "$/M req") else "---" for h in header) + "|"]

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    for e in entries:
        row = [f"`{cell(e.nodeid)}`", cell(e.target), cell(str(e.workload.get("str", ""))),
               str(e.count), format_value("latency", e.latency_s["p50"].value),
               format_value("latency", e.latency_s["p99"].value),
               format_value("throughput", e.throughput),
               "n/a" if math.isnan(e.success_ratio) else f"{e.success_ratio:.2%}",
               f"**{_verdict(e)}**" if _verdict(e) in ("fail", "INVALID") else _verdict(e)]
        if priced:
            row.insert(8, "-" if e.cost is None
                       else format_value("usd", e.cost.usd_per_million))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _bench_name(e: Entry) -> str:
    repeat = e.identity.get("repeat")
    name = e.nodeid if not repeat else f"{e.nodeid} #{int(repeat) + 1}"
    return name


def github_action_benchmark(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """github-action-benchmark's ``customSmallerIsBetter`` input: p50 and p99 in ms per
    result, and $ per million requests where priced. Throughput is bigger-is-better and
    belongs in a ``customBiggerIsBetter`` file; it is not here. Results with no value (every
    request failed) are left out rather than written as a number they never had."""
    out: list[dict[str, Any]] = []
    for e in entries:
        name = _bench_name(e)
        extra = f"{e.target} {e.workload.get('str', '')} n={e.count} SLO {_verdict(e)}"
        for stat in ("p50", "p99"):
            est = e.latency_s[stat]
            if not math.isfinite(est.value):
                continue
            item: dict[str, Any] = {"name": f"{name} {stat}", "unit": "ms",
                                    "value": round(est.value * 1e3, 6), "extra": extra}
            if math.isfinite(est.low) and math.isfinite(est.high):
                half = (est.high - est.low) / 2 * 1e3
                item["range"] = f"± {half:.3g}"
            out.append(item)
        if e.cost is not None and math.isfinite(e.cost.usd_per_million):
            out.append({"name": f"{name} usd_per_million", "unit": "USD",
                        "value": round(e.cost.usd_per_million, 6), "extra": extra})
    return out


def _latency_stats(e: Entry) -> dict[str, float | int | str]:
    """pytest-benchmark's ``stats`` of one result, in seconds, from its latency histogram
    (within the histogram's relative accuracy): min, max, mean, stddev, median, quartiles, IQR,
    outlier counts and ``ops`` (the result's throughput, not 1/mean: requests overlap)."""
    samples = e.histogram.samples()
    n = sum(c for _, c in samples)
    if n == 0:
        nan = math.nan
        return {"min": nan, "max": nan, "mean": nan, "stddev": 0.0, "rounds": 0,
                "median": nan, "iqr": 0.0, "q1": nan, "q3": nan, "iqr_outliers": 0,
                "stddev_outliers": 0, "outliers": "0;0", "ld15iqr": nan, "hd15iqr": nan,
                "ops": 0.0, "total": 0.0, "iterations": 1}
    mean = sum(v * c for v, c in samples) / n
    var = sum(c * (v - mean) ** 2 for v, c in samples) / (n - 1) if n > 1 else 0.0
    std = math.sqrt(var)
    q1, median, q3 = (e.histogram.quantile(q) for q in (0.25, 0.5, 0.75))
    iqr = q3 - q1
    low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    inside = [v for v, _ in samples if low_fence <= v <= high_fence] or [median]
    iqr_out = sum(c for v, c in samples if not low_fence <= v <= high_fence)
    std_out = sum(c for v, c in samples if abs(v - mean) > std)
    return {"min": samples[0][0], "max": samples[-1][0], "mean": mean, "stddev": std,
            "rounds": n, "median": median, "iqr": iqr, "q1": q1, "q3": q3,
            "iqr_outliers": iqr_out, "stddev_outliers": std_out,
            "outliers": f"{std_out};{iqr_out}", "ld15iqr": min(inside), "hd15iqr": max(inside),
            "ops": e.throughput if math.isfinite(e.throughput) else 0.0,
            "total": mean * n, "iterations": 1}


def pytest_benchmark_entries(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """Entries as pytest-benchmark ``benchmarks`` items (group ``servebench``): per-request
    latency as the timing, the result's throughput as ``ops``; the percentiles, success ratio,
    cost and verdict go in ``extra_info``. pytest-benchmark compares means and medians; the
    gate on percentiles stays servebench's own (``--servebench-compare``)."""
    out: list[dict[str, Any]] = []
    for e in entries:
        name = _bench_name(e)
        module, _, test = name.partition("::")
        param = test.partition("[")[2].rstrip("]") or None
        stats = {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                 for k, v in _latency_stats(e).items()}
        extra: dict[str, Any] = {
            "servebench": True, "target": e.target, "workload": e.workload.get("str", ""),
            "backend": e.backend, "count": e.count, "success_ratio": _finite(e.success_ratio),
            "throughput_per_s": _finite(e.throughput), "verdict": _verdict(e),
            **{f"{k}_s": _finite(v.value) for k, v in e.latency_s.items()},
        }
        if e.cost is not None:
            extra["usd_per_million"] = _finite(e.cost.usd_per_million)
        out.append({"group": "servebench", "name": (test or name) + f" ({e.target})",
                    "fullname": f"{name} ({e.target}, {e.workload.get('str', '')})",
                    "params": None if param is None else {"id": param}, "param": param,
                    "extra_info": extra, "options": {"source": "pytest-servebench",
                                                     "module": module},
                    "stats": stats})
    return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def pytest_benchmark_document(run: Run) -> dict[str, Any]:
    """A whole pytest-benchmark JSON file for one history run (``servebench history export
    --format pytest-benchmark``): its machine, commit and time, and its entries."""
    git: Mapping[str, Any] = run.git
    machine: Mapping[str, Any] = run.machine
    return {
        "machine_info": {"node": "", "machine": str(machine.get("machine", "")),
                         "system": str(machine.get("os", "")),
                         "python_version": run.python or str(machine.get("python", "")),
                         "cpu": {"brand_raw": str(machine.get("cpu", "")),
                                 "count": machine.get("cores")},
                         "servebench_run_id": run.run_id},
        "commit_info": {"id": git.get("commit"), "dirty": bool(git.get("dirty", False)),
                        "branch": git.get("branch"), "project": "pytest-servebench"},
        "benchmarks": pytest_benchmark_entries(list(run.entries)),
        "datetime": run.created_utc,
        "version": _pytest_benchmark_version(),
    }


def _pytest_benchmark_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("pytest-benchmark")
    except metadata.PackageNotFoundError:
        return "5.2.3"  # the format this writes
