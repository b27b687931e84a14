"""The report's figures drawn by matplotlib as inline SVG. matplotlib is imported here only,
when a report is written (``require_matplotlib`` says so clearly when it is missing); the
``Figure`` API is used without pyplot, so drawing keeps no global state."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .figures import (
    OVERHEAD,
    UNSPLIT,
    WARM,
    ColdStartBar,
    ConcurrencyCurve,
    CostChart,
    RequestTimeline,
    Spectrum,
    TimeSeries,
    Trend,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'pytest-servebench[report]'"
WIDTH_IN = 4.8  # drawn small, so that its text stays legible on a phone
# Colour-blind safe (Okabe-Ito), in a fixed order so a target keeps its colour in a figure.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000",
           "#B8A200", "#7f7f7f", "#8c564b", "#9467bd", "#17becf")
_STYLE: dict[Any, Any] = {"svg.fonttype": "none", "font.size": 11, "axes.titlesize": 11,
          "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
          "grid.alpha": 0.3, "legend.fontsize": 9, "legend.frameon": False,
          "figure.dpi": 72}


class MissingMatplotlib(RuntimeError):
    """A report was asked for without matplotlib installed."""


def require_matplotlib() -> None:
    """Raise ``MissingMatplotlib`` with the install line when matplotlib cannot be found;
    it is looked up without being imported (the plugin asks this at start-up)."""
    from importlib.util import find_spec

    if find_spec("matplotlib") is None:
        raise MissingMatplotlib(
            f"the HTML report draws its figures with matplotlib, which is not installed: "
            f"{INSTALL_HINT}")


class Canvas:
    """Renders figures to SVG text, one salt per figure so the ids that figures reference
    (clip paths, markers) are unique within the page yet the same on every run."""

    def __init__(self) -> None:
        require_matplotlib()
        self._count = 0

    @contextmanager
    def figure(self, height_in: float, *, width_in: float = WIDTH_IN) -> Iterator[Figure]:
        import matplotlib
        from matplotlib.figure import Figure

        with matplotlib.rc_context(_STYLE):
            fig = Figure(figsize=(width_in, height_in), layout="constrained")
            yield fig

    def svg(self, fig: Figure, title: str) -> str:
        import matplotlib

        self._count += 1
        out = io.StringIO()
        with matplotlib.rc_context({**_STYLE, "svg.hashsalt": f"sb{self._count}"}):
            fig.savefig(out, format="svg", metadata={"Date": None, "Title": title})
        text = out.getvalue()
        # Inline SVG: no XML prolog or doctype; the CSS sizes it (width 100%, height auto).
        text = text[text.index("<svg"):]
        text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
                      r'<svg\1 role="img" aria-label="' + _attr(title) + '"', text, count=1)
        return text


def _attr(text: str) -> str:
    return (text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
            .replace(">", "&gt;"))


def _plain_log(axis: Any) -> None:
    """Log-scale tick labels as plain numbers (20, 30, 100), minor ones too where the axis
    spans less than two decades; matplotlib's default writes 2x10^1."""
    from matplotlib.ticker import LogFormatter

    axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _shorten(text: str, width: int) -> str:
    """Cut in the middle, where parametrized ids differ least (the table has them whole)."""
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: keep - keep // 2] + "…" + text[len(text) - keep // 2:]


def _ms(seconds: float) -> float:
    return seconds * 1000


def _legend_cols(labels: Sequence[str]) -> int:
    """Two columns fit a phone's width only for short labels."""
    return 2 if len(labels) > 3 and max(map(len, labels)) <= 30 else 1


def _legend_height_in(labels: Sequence[str]) -> float:
    return 0.0 if len(labels) < 2 else 0.2 * math.ceil(len(labels) / _legend_cols(labels))


def _legend(fig: Figure, ax: Axes) -> None:
    """Below the axes, outside them: a legend over the data hides what it names."""
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) > 1:
        fig.legend(handles, labels, loc="outside lower center", fontsize=9,
                   ncols=_legend_cols(labels))


def spectrum_svg(canvas: Canvas, spectra: Sequence[Spectrum], title: str) -> str:
    """Latency (ms, log) against percentile, x = 1/(1-q) on a log axis labelled 50%, 90%,
    99%...; each result a line with its confidence band."""
    labels = [f"{s.label} (n={s.n:,})" for s in spectra]
    with canvas.figure(3.3 + _legend_height_in(labels)) as fig:
        ax = fig.add_subplot()
        top = 1.0
        for i, s in enumerate(spectra):
            colour = COLOURS[i % len(COLOURS)]
            x = [1 / (1 - q) for q in s.quantiles]
            top = max(top, x[-1])
            ax.plot(x, [_ms(v) for v in s.values_s], color=colour, lw=1.6,
                    label=labels[i], drawstyle="steps-post")
            ax.fill_between(x, [_ms(v) for v in s.low_s], [_ms(v) for v in s.high_s],
                            color=colour, alpha=0.18, lw=0, step="post")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
        ticks = [t for t in (1, 2, 10, 100, 1000, 10_000, 100_000) if t <= top * 1.01]
        ax.set_xticks(ticks, [_percentile_label(t) for t in ticks])
        ax.set_xlim(1, max(top, 2))
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms)")
        conf = spectra[0].confidence if spectra else 0.95
        ax.set_title(f"latency by percentile ({conf:.0%} bands)")
        _legend(fig, ax)
    return canvas.svg(fig, f"{title}: latency by percentile")


def _percentile_label(x: float) -> str:
    q = 1 - 1 / x
    return "0%" if q == 0 else f"{q * 100:.{max(0, round(math.log10(x)) - 2)}f}%"


def concurrency_svg(canvas: Canvas, curves: Sequence[ConcurrencyCurve], title: str) -> str:
    """Two panels sharing the concurrency axis: p50 and p99 with their intervals, and
    throughput."""
    labels = [f"{c.label} {stat}" for c in curves for stat in ("p50", "p99")]
    with canvas.figure(5.0 + _legend_height_in(labels)) as fig:
        lat, thr = fig.subplots(2, 1, sharex=True)
        for i, curve in enumerate(curves):
            colour = COLOURS[i % len(COLOURS)]
            c = [p.concurrency for p in curve.points]
            for stat, style in (("p50", "-"), ("p99", "--")):
                est = [getattr(p, stat) for p in curve.points]
                lat.plot(c, [_ms(e.value) for e in est], style, color=colour, marker="o",
                         ms=3.5, label=f"{curve.label} {stat}")
                lat.fill_between(c, [_ms(e.low) if math.isfinite(e.low) else math.nan
                                     for e in est],
                                 [_ms(e.high) if math.isfinite(e.high) else math.nan
                                  for e in est], color=colour, alpha=0.12, lw=0)
            thr.plot(c, [p.throughput for p in curve.points], color=colour, marker="o", ms=3.5,
                     label=curve.label)
        lat.set_yscale("log")
        _plain_log(lat.yaxis)
        lat.set_ylabel("latency (ms)")
        lat.set_title("latency and throughput by concurrency")
        _legend(fig, lat)
        thr.set_xscale("log", base=2)
        ticks = sorted({p.concurrency for curve in curves for p in curve.points})
        thr.set_xticks(ticks, [str(t) for t in ticks])
        thr.set_xlabel("concurrent users (closed loop)")
        thr.set_ylabel("throughput (req/s)")
        thr.set_ylim(bottom=0)
    return canvas.svg(fig, f"{title}: latency and throughput by concurrency")


def cost_svg(canvas: Canvas, chart: CostChart, title: str) -> str:
    """Cost per million and p50 latency side by side for each target by memory size, the
    cheapest and the fastest marked, as AWS Lambda Power Tuning compares memory sizes."""
    points = chart.points
    with canvas.figure(1.5 + 0.45 * len(points)) as fig:
        cost, lat = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
        y = list(range(len(points)))
        cost.barh(y, [p.usd_per_million for p in points], height=0.6,
                  color=[COLOURS[2] if i == chart.cheapest else COLOURS[0] for i in y])
        cost.set_yticks(y, [f"{p.label}\n{p.memory_mb:,.0f} MB" for p in points], fontsize=9)
        cost.invert_yaxis()
        cost.set_xlabel("$ per million")
        usd = [p.usd_per_million for p in points if p.usd_per_million > 0]
        if usd and max(usd) > 20 * min(usd):  # a server beside functions: 100x apart
            cost.set_xscale("log")
            _plain_log(cost.xaxis)
        cheap = points[chart.cheapest]
        cost.annotate("cheapest", (cheap.usd_per_million, chart.cheapest), xytext=(4, 0),
                      textcoords="offset points", va="center", fontsize=9,
                      color=COLOURS[2], fontweight="bold")
        if cost.get_xscale() == "log":
            cost.set_xlim(min(usd) / 3, max(usd) * 6)
        else:
            cost.set_xlim(0, max(p.usd_per_million for p in points) * 1.45)
        lat.plot([_ms(p.p50_s) for p in points], y, color=COLOURS[3], marker="o", lw=0)
        fast = points[chart.fastest]
        lat.plot([_ms(fast.p50_s)], [chart.fastest], marker="*", ms=15, color=COLOURS[3],
                 lw=0)
        lat.annotate("fastest", (_ms(fast.p50_s), chart.fastest), xytext=(8, 0),
                     textcoords="offset points", va="center", fontsize=9, color=COLOURS[3],
                     fontweight="bold")
        lat.set_xlim(0, max(_ms(p.p50_s) for p in points if math.isfinite(p.p50_s)) * 1.45)
        lat.set_xlabel("p50 (ms)")
        fig.suptitle("cost and latency by target and memory size", fontsize=11)
    return canvas.svg(fig, f"{title}: cost and latency by memory size")


def cold_start_svg(canvas: Canvas, bars: Sequence[ColdStartBar], title: str) -> str:
    """Horizontal stacked bars, one per cold-started result."""
    colour = {WARM: COLOURS[0], OVERHEAD: COLOURS[3], UNSPLIT: COLOURS[7]}
    with canvas.figure(1.6 + 0.3 * len(bars)) as fig:
        ax = fig.add_subplot()
        y = list(range(len(bars)))
        seen: set[str] = set()
        for i, bar in enumerate(bars):
            left = 0.0
            for name, seconds in bar.segments:
                ax.barh(i, _ms(seconds), left=left, color=colour.get(name, COLOURS[4]),
                        height=0.6, label=None if name in seen else name)
                seen.add(name)
                left += _ms(seconds)
        ax.set_yticks(y, [b.label for b in bars], fontsize=9)
        ax.invert_yaxis()
        ax.set_xlabel("cold request, p50 (ms)")
        fig.suptitle("cold starts", fontsize=11)
        _legend(fig, ax)
    return canvas.svg(fig, f"{title}: cold starts")


def time_series_svg(canvas: Canvas, series: Sequence[TimeSeries], title: str) -> str:
    """Completions per second against time in the measuring window, offered rate dashed."""
    with canvas.figure(1.0 + 1.7 * len(series)) as fig:
        axes: Any = fig.subplots(len(series), 1, squeeze=False)
        for i, s in enumerate(series):
            ax = axes[i][0]
            colour = COLOURS[i % len(COLOURS)]
            # The last interval ends where the window does: repeat its rate there.
            ax.step([*s.start_s, s.end_s], [*s.rates, s.rates[-1]], where="post", color=colour,
                    label="completions/s")
            if s.offered_rate is not None:
                ax.axhline(s.offered_rate, color="#555", ls="--", lw=1,
                           label=f"offered (mean {s.offered_rate:.3g}/s)")
            drops = (f"{s.drops} of {s.count} dropped ("
                     + ", ".join(f"{k} {n}" for k, n in sorted(s.errors.items())) + ")"
                     if s.drops else f"no drops of {s.count}")
            ax.set_title(f"{s.label}: {drops}", fontsize=10, loc="left")
            ax.set_ylabel("req/s")
            ax.set_ylim(bottom=0)
            ax.legend(loc="lower right", fontsize=8)
        axes[-1][0].set_xlabel("seconds into the measuring window")
        fig.suptitle("throughput over time", fontsize=11)
    return canvas.svg(fig, f"{title}: throughput over time")


def timeline_svg(canvas: Canvas, timelines: Sequence[RequestTimeline], title: str) -> str:
    """Each request's latency against when it was due (log scale), the drops as crosses
    along the top; one panel per run."""
    with canvas.figure(1.0 + 1.8 * len(timelines)) as fig:
        axes: Any = fig.subplots(len(timelines), 1, squeeze=False)
        for i, t in enumerate(timelines):
            ax = axes[i][0]
            ax.scatter(t.sent_s, [_ms(v) for v in t.latency_s], s=5, alpha=0.6, lw=0,
                       color=COLOURS[i % len(COLOURS)], label="latency of a request")
            ax.set_yscale("log")
            _plain_log(ax.yaxis)
            if t.dropped_s:
                ax.plot(t.dropped_s, [1.0] * len(t.dropped_s), "x", color=COLOURS[3], ms=5,
                        transform=ax.get_xaxis_transform(), clip_on=False,
                        label="dropped")
            drops = ", ".join(f"{k} {n}" for k, n in sorted(t.errors.items()))
            ax.set_title(f"{t.label}: {len(t.dropped_s)} dropped" + (f" ({drops})" if drops
                                                                     else ""),
                         fontsize=10, loc="left")
            ax.set_ylabel("ms")
            ax.legend(loc="upper left", fontsize=8, markerscale=2)
        axes[-1][0].set_xlabel("seconds from the start of the run (when each was due)")
        fig.suptitle("latency and drops over time", fontsize=11)
    return canvas.svg(fig, f"{title}: latency and drops over time")


def trends_svg(canvas: Canvas, trends: Sequence[Trend], title: str) -> str:
    """Small multiples: each result's p50 and p99 over its last runs, with intervals."""
    cols = 2 if len(trends) > 1 else 1
    rows = math.ceil(len(trends) / cols)
    with canvas.figure(0.6 + 1.9 * rows) as fig:
        axes: Any = fig.subplots(rows, cols, squeeze=False)
        for i, trend in enumerate(trends):
            ax = axes[i // cols][i % cols]
            x = list(range(1, len(trend.points) + 1))
            for stat, colour in (("p50", COLOURS[0]), ("p99", COLOURS[3])):
                # A band, not error bars: one path per line however many runs it spans.
                est = [getattr(p, stat) for p in trend.points]
                ax.plot(x, [_ms(e.value) for e in est], color=colour, marker="o", ms=3, lw=1,
                        label=stat)
                ax.fill_between(x, [_ms(e.low) if math.isfinite(e.low) else math.nan
                                    for e in est],
                                [_ms(e.high) if math.isfinite(e.high) else math.nan
                                 for e in est], color=colour, alpha=0.15, lw=0)
            ax.set_title(_shorten(trend.label, 28 if cols > 1 else 60), fontsize=8.5,
                         loc="left")
            ax.set_xticks(x, [str(v) for v in x], fontsize=8)
            ax.set_ylabel("ms", fontsize=9)
            ax.set_ylim(bottom=0)
            if i == 0:
                ax.legend(loc="lower left", fontsize=8)
        for j in range(len(trends), rows * cols):
            axes[j // cols][j % cols].set_visible(False)
        fig.suptitle("p50 and p99 over the last runs (oldest first)", fontsize=10)
    return canvas.svg(fig, f"{title}: trends")
