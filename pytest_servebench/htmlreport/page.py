"""The report's HTML: one self-contained page (inline CSS and SVG, no script, nothing fetched),
laid out for a desktop and a phone alike. One section per test module: its results with
their SLO verdicts, then its figures; the comparison with the baseline on top."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..metrics import format_value
from ..stats import DEFAULT_CONFIDENCE, Estimate
from . import figures
from .figures import TREND_RUNS

if TYPE_CHECKING:
    from ..compare import Change, Comparison
    from ..history import Entry, Run
    from .plots import Canvas

TALL_TABLE_ROWS = 12
CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1b1b1b; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 14px; }
h1 { font-size: 1.45rem; margin: 0.2em 0; }
h2 { font-size: 1.2rem; margin: 1.6em 0 0.4em; padding-bottom: 0.2em;
     border-bottom: 2px solid #d9dde3; overflow-wrap: anywhere; }
h3 { font-size: 1rem; margin: 1.1em 0 0.3em; }
.meta { color: #444; font-size: 0.9rem; overflow-wrap: anywhere; }
.meta span { margin-right: 1.2em; white-space: nowrap; }
nav ul { padding-left: 1.2em; margin: 0.3em 0; }
nav a { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; background: #fff;
          border: 1px solid #e1e4e8; border-radius: 6px; }
.scroll.tall { max-height: 70vh; overflow-y: auto; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { padding: 4px 8px; border-bottom: 1px solid #eef0f2; text-align: left;
         vertical-align: top; white-space: nowrap; }
th { background: #f0f2f5; font-weight: 600; position: sticky; top: 0; z-index: 2; }
th:first-child { left: 0; z-index: 3; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.test { white-space: normal; min-width: 13em; max-width: 24em; position: sticky; left: 0;
          z-index: 1; background: #fff; overflow-wrap: anywhere; }
td.test small { overflow-wrap: anywhere; }
td small { color: #666; }
.figs { display: grid; gap: 12px; margin-top: 12px; align-items: start;
        grid-template-columns: repeat(auto-fit, minmax(min(100%, 540px), 1fr)); }
figure { margin: 0; background: #fff; border: 1px solid #e1e4e8; border-radius: 6px;
         padding: 6px; min-width: 0; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 12.5px; color: #555; padding: 2px 4px; }
.fighead { font-weight: 600; font-size: 13.5px; padding: 2px 4px; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px;
         margin: 1px 2px 1px 0; white-space: nowrap; }
.pass, .improvement, .unchanged { background: #dcf2e0; color: #14532d; }
.fail, .regression { background: #fbd9d9; color: #7f1414; }
.inconclusive { background: #fff1c7; color: #6b4e00; }
.none { background: #eceef1; color: #555; }
.note { color: #555; font-size: 13px; margin: 0.4em 0; }
summary { cursor: pointer; margin: 0.5em 0; color: #333; }
@media (max-width: 640px) {
  body { font-size: 14px; }
  main { padding: 8px; }
  h1 { font-size: 1.25rem; }
  table { font-size: 12px; }
  td.test { min-width: 9.5em; max-width: 11em; box-shadow: 1px 0 0 #e1e4e8;
            overflow-wrap: anywhere; }
  .meta span { display: block; }
}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _anchor(module: str) -> str:
    return "m-" + "".join(c if c.isalnum() else "-" for c in module)


def _latency(est: Estimate) -> str:
    value = format_value("latency", est.value)
    if math.isnan(est.value) or (est.low == est.value == est.high):
        return _e(value)
    low = format_value("latency", est.low) if math.isfinite(est.low) else "?"
    high = format_value("latency", est.high) if math.isfinite(est.high) else "∞"
    return f"{_e(value)}<br><small>{_e(low)} – {_e(high)}</small>"


def _badge(kind: str, text: str) -> str:
    return f'<span class="badge {_e(kind)}">{_e(text)}</span>'


def _verdicts(entry: Entry) -> str:
    if not entry.slo:
        return _badge("none", "no SLO")
    return " ".join(_badge(v.outcome, f"{v.slo}: {v.outcome}") for v in entry.slo)


def _table(header: Sequence[tuple[str, bool]], rows: Sequence[Sequence[str]], *,
           tall: bool = False) -> str:
    """``header``: (title, numeric); cells are HTML already. A ``tall`` table scrolls in a
    box of its own, so that the figures after it are a short scroll away on a phone."""
    head = "".join(f'<th class="num">{_e(h)}</th>' if num else f"<th>{_e(h)}</th>"
                   for h, num in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = "test" if i == 0 else ("num" if header[i][1] else "")
            cells.append(f'<td class="{cls}">{cell}</td>' if cls else f"<td>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    box = "scroll tall" if tall else "scroll"
    return (f'<div class="{box}"><table><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body) + "</tbody></table></div>")


def results_table(entries: Sequence[Entry]) -> str:
    """One row per result; the columns a phone shows first (beside the sticky test column)
    are the measurements, the target and workload come last."""
    header = [("test", False), ("p50 (interval)", True), ("p99 (interval)", True),
              ("throughput", True), ("success", True), ("$ / million", True),
              ("cold starts", True), ("SLO verdicts", False), ("target", False),
              ("workload", False), ("n", True)]
    rows = []
    for e in entries:
        test = _test_cell(e.nodeid)
        if e.identity.get("repeat"):
            test += f" <small>#{int(e.identity['repeat']) + 1}</small>"
        if not e.valid:
            test += "<br>" + _badge("inconclusive", f"invalid: {e.invalid_reason}")
        cold = e.cold_starts
        rows.append([
            test, _latency(e.latency_s["p50"]), _latency(e.latency_s["p99"]),
            _e(format_value("throughput", e.throughput)),
            _e(f"{e.success_ratio:.2%}" if math.isfinite(e.success_ratio) else "n/a"),
            _e(format_value("usd", e.cost.usd_per_million) if e.cost else "–"),
            _e(f"{cold.count} (p50 {format_value('latency', cold.latency_p50_s)})"
               if cold and cold.count else "–"),
            _verdicts(e), _e(e.target),
            _e(e.workload.get("str", e.workload.get("kind", ""))), f"{e.count:,}"])
    return _table(header, rows, tall=len(rows) > TALL_TABLE_ROWS)


def _test_cell(nodeid: str, *, module: bool = False) -> str:
    params = figures.params_of(nodeid)
    cell = _e(figures.function_of(nodeid))
    if params:
        cell += f"<br><small>[{_e(params)}]</small>"
    if module:
        cell += f"<br><small>{_e(figures.module_of(nodeid))}</small>"
    return cell


def compare_table(cmp: Comparison) -> str:
    """The tally, then the metrics that changed or could not be decided; the unchanged ones
    only under a fold (a long run compares hundreds)."""
    from ..metrics import parse_metric

    header = [("test", False), ("metric", False), ("baseline", True), ("current", True),
              ("change", True), ("95% interval", True), ("p-value", True),
              ("threshold", False), ("verdict", False)]

    several = len({figures.module_of(c.nodeid) for c in cmp.changes}) > 1

    def row(c: Change) -> list[str]:
        fmt = parse_metric(c.metric).format
        return [_test_cell(c.nodeid, module=several), _e(c.metric), _e(fmt(c.baseline)),
                _e(fmt(c.current)), _e(c.change_text()), _e(c.interval_text()),
                _e("n/a" if c.p_value is None else f"{c.p_value:.3g}"), _e(c.threshold),
                _badge(c.verdict, c.verdict) + (f"<br><small>{_e(c.reason)}</small>"
                                                 if c.reason else "")]

    parts = [f'<p>Baseline: <b>{_e(cmp.reference)}</b>. {cmp.compared} result(s) compared, '
             f"{len(cmp.no_baseline)} without a baseline. Metrics: {_e(cmp.tally())}.</p>"]
    if cmp.machine_differs:
        parts.append('<p class="note">The baseline was measured on a different machine '
                     "(CPU, cores or memory differ): compare with care.</p>")
    shown = [c for c in cmp.changes if c.verdict != "unchanged"]
    unchanged = [c for c in cmp.changes if c.verdict == "unchanged"]
    if shown:
        parts.append(_table(header, [row(c) for c in shown],
                            tall=len(shown) > TALL_TABLE_ROWS))
    if unchanged:
        parts.append(f"<details><summary>{len(unchanged)} unchanged metric(s)</summary>"
                     + _table(header, [row(c) for c in unchanged],
                              tall=len(unchanged) > TALL_TABLE_ROWS) + "</details>")
    return "".join(parts)


def _figure(heading: str, svg: str, caption: str = "") -> str:
    """A figure under its heading (HTML text wraps on a phone, a title in the SVG would not)."""
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><div class="fighead">{_e(heading)}</div>{svg}{cap}</figure>'


def module_section(module: str, entries: Sequence[Entry], runs: Sequence[Run],
                   canvas: Canvas, *, comparison: Comparison | None = None,
                   trend_runs: int = TREND_RUNS, confidence: float = DEFAULT_CONFIDENCE,
                   timelines: Mapping[str, figures.RequestTimeline] | None = None) -> str:
    """``timelines``: per-request records by entry key (``recorded.timelines``)."""
    from . import plots

    out = [f'<section id="{_anchor(module)}"><h2>{_e(module)}</h2>', results_table(entries)]
    figs: list[str] = []
    notes: list[str] = []
    by_function = figures.group_by_function(entries)
    for function, group in by_function.items():
        spectra = figures.spectra(group, confidence=confidence)
        if spectra:
            figs.append(_figure(function, plots.spectrum_svg(canvas, spectra, function),
                                "x: percentile on a log scale of 1/(1-q), as HdrHistogram "
                                "plots it; bands: distribution-free intervals, open where "
                                "the sample is too small to bound them"))
    curves = figures.concurrency_curves(entries)
    if curves:
        figs.append(_figure(_short(module), plots.concurrency_svg(canvas, curves, _short(module)),
                            "shaded: the intervals of p50 and p99"))
    chart = figures.cost_chart(entries)
    if chart is not None:
        figs.append(_figure(
            _short(module), plots.cost_svg(canvas, chart, _short(module)),
            "per target: the median over its results of the cost per million and of p50; "
            f"cheapest: {chart.points[chart.cheapest].label}, "
            f"fastest: {chart.points[chart.fastest].label}"))
    bars = figures.cold_start_bars(entries)
    if bars:
        figs.append(_figure(_short(module), plots.cold_start_svg(canvas, bars, _short(module))))
        notes.append("Cold starts: the history keeps each cold-started result's count and p50 "
                     "latency, not the steps of the start (download, import, model load), so "
                     "a bar splits it only into the warm request and the overhead.")
    series = figures.time_series(entries)
    if series:
        figs.append(_figure(_short(module), plots.time_series_svg(canvas, series,
                                                                  _short(module))))
    scheduled = [e for e in entries if figures.is_scheduled(e)]
    recorded = [timelines[e.key] for e in scheduled if timelines and e.key in timelines]
    if recorded:
        figs.append(_figure(_short(module), plots.timeline_svg(canvas, recorded,
                                                               _short(module))))
    if len(recorded) < len(scheduled):
        lacking = len(scheduled) - len(recorded)
        notes.append("Over time: the history keeps completions per interval of the measuring "
                     "window and the drops in total; latency over time and when the drops "
                     f"happened come from per-request records, which {lacking} scheduled "
                     "result(s) lack (--servebench-records DIR writes them; servebench report "
                     "--records DIR reads them).")
    if figs:
        out.append('<div class="figs">' + "".join(figs) + "</div>")
    trend_figs = []
    single = 0
    for function, group in by_function.items():
        found = [t for t in figures.trends(group, runs, last=trend_runs) if len(t.points) > 1]
        single += len(group) - len(found)
        if found:
            trend_figs.append(_figure(function, plots.trends_svg(canvas, found, function)))
    if trend_figs:
        out.append("<h3>History</h3>")
        out.append('<div class="figs">' + "".join(trend_figs) + "</div>")
    if single:
        notes.append(f"History: {single} result(s) appear in this run only (trends need two "
                     "runs of the same test, target and workload).")
    if comparison is not None:
        mine = [c for c in comparison.changes if figures.module_of(c.nodeid) == module]
        if mine:
            out.append("<h3>Compared with the baseline</h3>")
            out.append(_changes_list(mine))
    out += [f'<p class="note">{_e(n)}</p>' for n in notes]
    out.append("</section>")
    return "".join(out)


def _changes_list(changes: Sequence[Change]) -> str:
    counts: dict[str, int] = {}
    for c in changes:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    return "<p>" + " ".join(_badge(v, f"{n} {v}") for v, n in sorted(counts.items())) + \
        " (details in the comparison table at the top)</p>"


def _short(module: str) -> str:
    return module.rsplit("/", 1)[-1].removesuffix(".py")


def _meta(run: Run) -> str:
    machine: Mapping[str, object] = run.machine
    git = run.git
    items = [("run", run.run_id + (f" ({run.name})" if run.name else "")),
             ("at", run.created_utc), ("backend", run.backend or "?"),
             ("machine", f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
                         f"{machine.get('memory_gib', '?')} GiB"),
             ("python", run.python or "?")]
    if git.get("commit"):
        items.append(("git", f"{str(git['commit'])[:10]}{' (dirty)' if git.get('dirty') else ''}"))
    return '<p class="meta">' + "".join(f"<span><b>{_e(k)}</b> {_e(v)}</span>"
                                        for k, v in items) + "</p>"


def _overview(groups: Mapping[str, Sequence[Entry]]) -> str:
    items = []
    for module, entries in groups.items():
        outcomes: dict[str, int] = {}
        for e in entries:
            for v in e.slo:
                outcomes[v.outcome] = outcomes.get(v.outcome, 0) + 1
        badges = " ".join(_badge(k, f"{n} {k}") for k, n in sorted(outcomes.items()))
        items.append(f'<li><a href="#{_anchor(module)}">{_e(module)}</a>: {len(entries)} '
                     f"result(s) {badges}</li>")
    return "<nav><ul>" + "".join(items) + "</ul></nav>"


def render(runs: Sequence[Run], *, run_index: int = -1, comparison: Comparison | None = None,
           trend_runs: int = TREND_RUNS, confidence: float = DEFAULT_CONFIDENCE,
           title: str = "servebench report", records_dir: Path | None = None) -> str:
    """The page for ``runs[run_index]``; the runs before it give the trends;
    ``records_dir``: that run's per-request records (``--servebench-records``)."""
    from .plots import Canvas

    if not runs:
        raise ValueError("the history holds no runs: nothing to report")
    run = runs[run_index]
    upto = list(runs[: range(len(runs))[run_index] + 1])
    entries = list(run.entries)
    canvas = Canvas()
    groups = figures.group_by_module(entries)
    timelines = None
    if records_dir is not None:
        from .recorded import timelines as read_timelines

        timelines = read_timelines(records_dir, [e for e in entries if figures.is_scheduled(e)])
    body = [f"<header><h1>{_e(title)}</h1>{_meta(run)}</header>", _overview(groups)]
    if comparison is not None:
        body.append("<h2>Comparison with the baseline</h2>" + compare_table(comparison))
    for module, group in groups.items():
        body.append(module_section(module, group, upto, canvas, comparison=comparison,
                                   trend_runs=trend_runs, confidence=confidence,
                                   timelines=timelines))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)} {_e(run.run_id)}</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")
