"""The HTML report: what goes into each figure (no matplotlib, no browser), the page, and the
page as a real browser renders it (Debian's chromium, headless; CI installs it)."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

import pytest

from pytest_servebench.histogram import LatencyHistogram
from pytest_servebench.history import make_entry
from pytest_servebench.htmlreport import (
    MissingMatplotlib,
    render_report,
    require_matplotlib,
    write_report,
)
from pytest_servebench.htmlreport import figures as fg

from .report_data import MODULE, cost, entry, run, study_entries, study_runs

# --- figure data -------------------------------------------------------------------------------


def test_names_of_a_node_id() -> None:
    nodeid = "suites/test_000.py::TestX::test_sweep[lambda-1024-users=4]"
    assert fg.module_of(nodeid) == "suites/test_000.py"
    assert fg.function_of(nodeid) == "TestX::test_sweep"
    assert fg.params_of(nodeid) == "lambda-1024-users=4"
    assert fg.params_of("t.py::test_x") == ""


def test_a_result_without_parameters_is_named_by_its_target_and_workload() -> None:
    assert fg.entry_label(entry(f"{MODULE}::t[a]", [0.1])) == "a"
    assert fg.entry_label(entry(f"{MODULE}::t", [0.1])) == "lambda:fn closed(c=1)"


def test_spectrum_runs_from_the_median_to_the_last_resolved_nine() -> None:
    h = LatencyHistogram()
    h.record_many(i / 1000 for i in range(1, 1001))  # 1..1000 ms
    s = fg.spectrum_of("x", h)
    assert s.n == 1000 and s.quantiles[0] == 0.0
    assert s.quantiles[-1] == pytest.approx(1 - 1 / 1000)
    assert list(s.values_s) == sorted(s.values_s)
    # Each value within the histogram's 1% of the exact order statistic.
    for q, v in zip(s.quantiles, s.values_s, strict=True):
        exact = max(1, math.ceil(q * 1000)) / 1000
        assert v == pytest.approx(exact, rel=0.011), q
    for lo, v, hi in zip(s.low_s, s.values_s, s.high_s, strict=True):
        assert math.isnan(lo) or lo <= v
        assert math.isnan(hi) or v <= hi
    # The median is bounded on both sides; the top quantile (q = 0.999 of 1000) is not
    # bounded above: no sample can bound it.
    mid = min(range(len(s.quantiles)), key=lambda i: abs(s.quantiles[i] - 0.5))
    assert s.low_s[mid] < s.values_s[mid] < s.high_s[mid]
    assert math.isnan(s.high_s[-1]) and not math.isnan(s.low_s[-1])


def test_one_request_has_no_spectrum() -> None:
    entries = [entry(f"{MODULE}::t[a]", [0.1]), entry(f"{MODULE}::t[b]", [0.1, 0.2, 0.3])]
    assert [s.label for s in fg.spectra(entries)] == ["b"]


def test_concurrency_curves_need_two_concurrencies_of_one_target() -> None:
    curves = fg.concurrency_curves(study_entries())
    assert [c.label for c in curves] == ["lambda:fn-1024", "lambda:fn-2048"]
    sweep = {e.workload["concurrency"]: e for e in study_entries()
             if e.target == "lambda:fn-2048" and e.workload["kind"] == "closed"}
    assert [p.concurrency for p in curves[1].points] == [1, 4, 16]
    assert [p.throughput for p in curves[1].points] == [sweep[c].throughput for c in (1, 4, 16)]
    assert curves[1].points[0].p99 == sweep[1].latency_s["p99"]


def test_cost_chart_marks_the_cheapest_and_the_fastest_and_leaves_out_cold_starts() -> None:
    chart = fg.cost_chart(study_entries())
    assert chart is not None
    labels = [p.label for p in chart.points]
    assert labels == ["lambda:fn-1024", "lambda:fn-2048", "ec2:c5.large"]  # by memory size
    assert [p.memory_mb for p in chart.points] == [1024, 2048, 4096]
    assert labels[chart.cheapest] == "ec2:c5.large"  # $0.15 per million
    assert labels[chart.fastest] == "ec2:c5.large"  # p50 ~8 ms
    # The 1024 MB function's medians are its three sweep results' (the cold start's $9/M
    # is not the steady state's price).
    assert chart.points[0].results == 3
    assert chart.points[0].usd_per_million == pytest.approx(0.2 * 20 / 12)
    one = [e for e in study_entries() if e.target == "lambda:fn-1024"]
    assert fg.cost_chart(one) is None


def test_cost_chart_fastest_differs_from_cheapest() -> None:
    entries = [entry("m.py::t[a]", [0.010] * 5, target="a", cost=cost(1.0)),
               entry("m.py::t[b]", [0.050] * 5, target="b", cost=cost(0.5),
                     profile={"platform": "lambda", "memory_mb": 512})]
    chart = fg.cost_chart(entries)
    assert chart is not None
    assert chart.points[chart.cheapest].label == "b" and chart.points[chart.fastest].label == "a"


def test_cold_start_bars_split_off_the_warm_request() -> None:
    bars = {b.label: b for b in fg.cold_start_bars(study_entries())}
    cold = bars["test_cold_start fn-1024"]
    warm = sorted(e.latency_s["p50"].value for e in study_entries()
                  if e.target == "lambda:fn-1024" and e.cold_starts is None)[1]
    assert [name for name, _ in cold.segments] == [fg.WARM, fg.OVERHEAD]
    assert cold.segments[0][1] == warm
    assert sum(s for _, s in cold.segments) == pytest.approx(0.4)
    bursts = bars["test_bursts <peak>=40"]
    assert bursts.cold_starts == 2 and bursts.segments[0][0] == fg.WARM
    alone = fg.cold_start_bars([e for e in study_entries() if "cold_start" in e.nodeid])
    assert len(alone[0].segments) == 1 and alone[0].segments[0][0] == fg.UNSPLIT
    assert alone[0].segments[0][1] == pytest.approx(0.4)


def test_time_series_of_a_scheduled_run_only() -> None:
    series = fg.time_series(study_entries())
    assert len(series) == 1
    s = series[0]
    assert s.label == "<peak>=40" and s.offered_rate == 12.0 and s.end_s == 10.0
    assert s.start_s[:3] == (0.0, 1.0, 2.0) and s.rates[:3] == (4.0, 5.0, 30.0)
    assert s.drops == 3 and s.errors == {"timeout": 3} and s.count == sum(s.rates) + 3


def _records_csv(rows: list[tuple[int, float, float, int, str]]) -> str:
    """(warmup, intended_s, latency_s, ok, error) rows as ``Result.records_csv`` writes them."""
    head = ("index,warmup,intended_s,sent_s,done_s,latency_s,ok,error,status,cold_start,"
            "init_duration_s,billed_duration_s,sandbox_id")
    return "\n".join([head, *(f"{i},{w},{t},{t},{t + lat},{lat},{ok},{err},,,,,"
                               for i, (w, t, lat, ok, err) in enumerate(rows))]) + "\n"


RECORDS = [(1, 0.0, 0.5, 1, ""), (0, 0.1, 0.02, 1, ""), (0, 0.2, 0.03, 1, ""),
           (0, 0.3, 5.0, 0, "timeout"), (0, 0.4, 0.0, 0, "http_503"), (0, 0.5, 0.0, 0, "http_503")]


def test_request_timeline_leaves_out_the_warm_up_and_places_the_drops() -> None:
    import csv
    import io

    t = fg.request_timeline("x", csv.DictReader(io.StringIO(_records_csv(RECORDS))))
    assert t.sent_s == (0.1, 0.2) and t.latency_s == (0.02, 0.03)
    assert t.dropped_s == (0.3, 0.4, 0.5) and t.errors == {"timeout": 1, "http_503": 2}


def test_timelines_are_read_for_the_entries_whose_records_match(tmp_path: Path) -> None:
    from pytest_servebench.htmlreport.recorded import records_file, timelines

    bursts = next(e for e in study_entries() if e.nodeid.endswith("[<peak>=40]"))
    five = replace(bursts, count=5)
    path = records_file(tmp_path, five.nodeid, 0)
    assert path.name == "suites_test_study.py__test_bursts__peak__40_.0.csv"
    path.write_text(_records_csv(RECORDS))
    assert list(timelines(tmp_path, [five])) == [five.key]
    # The file of another run (another number of requests) is not this entry's.
    assert timelines(tmp_path, [bursts]) == {}
    assert timelines(tmp_path / "none", [five]) == {}


def test_trends_follow_a_key_over_the_runs_that_hold_it() -> None:
    runs = study_runs(4)
    target = runs[-1].entries[0]
    # A run without that result: skipped, not a gap.
    runs.insert(2, run([e for e in study_entries(9) if e.key != target.key], "gap99"))
    trend = fg.trends([target], runs)[0]
    assert [p.run_id for p in trend.points] == ["run00", "run01", "run02", "run03"]
    assert trend.points[-1].p50 == target.latency_s["p50"]
    assert [p.run_id for p in fg.trends([target], runs, last=2)[0].points] == ["run02",
                                                                              "run03"]


# --- the page ----------------------------------------------------------------------------------

needs_matplotlib = pytest.mark.skipif(
    find_spec("matplotlib") is None,
    reason="matplotlib is not installed (the [report] extra; [dev] includes it)")

# Figures of the miniature study's last run: spectra of test_sweep and test_bursts (the one
# cold request of test_cold_start has none), latency/throughput by concurrency, cost by
# memory, cold starts, throughput over time, and a trend per test function.
FIGURES = 2 + 1 + 1 + 1 + 1 + 3


@needs_matplotlib
def test_page_holds_every_figure_and_fetches_nothing() -> None:
    page = render_report(study_runs(3))
    assert page.count("<svg") == FIGURES
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    # Self-contained: no script, no stylesheet or image from elsewhere.
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    # The ids figures reference (clip paths, markers) are unique across the page.
    ids = re.findall(r'<clipPath id="([^"]+)"', page)
    assert ids and len(ids) == len(set(ids))
    assert '<meta name="viewport"' in page and "@media (max-width" in page


@needs_matplotlib
def test_page_shows_verdicts_and_escapes_names() -> None:
    page = render_report(study_runs(2))
    assert "test_bursts<br><small>[&lt;peak&gt;=40]</small>" in page
    assert "[<peak>" not in page
    assert '<span class="badge fail">p99 &lt; 200ms: fail</span>' in page
    assert '<span class="badge inconclusive">success_ratio &gt;= 0.99: inconclusive' in page
    assert "cheapest: ec2:c5.large" in page
    assert "which 1 scheduled result(s) lack (--servebench-records DIR" in page


@needs_matplotlib
def test_records_add_latency_and_drops_over_time(tmp_path: Path) -> None:
    from pytest_servebench.htmlreport.recorded import records_file

    runs = study_runs(1)
    bursts = next(e for e in runs[0].entries if e.nodeid.endswith("[<peak>=40]"))
    rows = [(0, i * 0.08, 0.015, 1, "") for i in range(bursts.ok_count)]
    rows += [(0, 3.0 + i, 0.0, 0, "timeout") for i in range(bursts.count - bursts.ok_count)]
    records_file(tmp_path, bursts.nodeid, 0).write_text(_records_csv(rows))
    page = render_report(runs, records_dir=tmp_path)
    assert page.count("<svg") == FIGURES - 3 + 1
    assert "latency and drops over time" in page and "scheduled result(s) lack" not in page


@needs_matplotlib
def test_a_result_without_one_success_is_reported_without_figures_of_it() -> None:
    from pytest_servebench.result import summarize

    from .synthetic import recording

    failed = make_entry(f"{MODULE}::test_down", summarize(
        recording([], errors=5), target="lambda:down", target_profile={"memory_mb": 512},
        workload={"kind": "closed", "concurrency": 1, "str": "closed(c=1)"}), [], "local")
    assert math.isnan(failed.latency_s["p50"].value)
    runs = study_runs(2)
    runs.append(run([*runs[-1].entries, failed], "run99"))
    page = render_report(runs)
    assert "test_down" in page and "n/a" in page
    assert page.count("<svg") == FIGURES  # nothing to draw of it, and nothing breaks


@needs_matplotlib
def test_the_first_run_has_no_trends_and_says_so() -> None:
    page = render_report(study_runs(1))
    assert page.count("<svg") == FIGURES - 3
    assert f"History: {len(study_entries())} result(s) appear in this run only" in page


@needs_matplotlib
def test_a_comparison_is_shown_with_its_verdicts() -> None:
    from pytest_servebench.compare import compare_run, parse_thresholds

    runs = study_runs(3)
    cmp = compare_run(runs[-1].entries, runs[:-1], thresholds=parse_thresholds("p50:10%"))
    page = render_report(runs, comparison=cmp)
    assert "Comparison with the baseline" in page
    assert cmp.regressions  # 30% slower, 200 requests each
    assert page.count('<span class="badge regression">regression</span>') == \
        len(cmp.regressions)


@needs_matplotlib
def test_unchanged_metrics_are_folded_away() -> None:
    from pytest_servebench.compare import compare_run, parse_thresholds

    runs = study_runs(3)[:2]  # the same latencies, drawn twice
    cmp = compare_run(runs[-1].entries, runs[:-1], thresholds=parse_thresholds("p50:50%"))
    unchanged = cmp.count("unchanged")
    assert unchanged > 0
    page = render_report(runs, comparison=cmp)
    folded = page.split(f"<details><summary>{unchanged} unchanged metric(s)</summary>", 1)
    assert len(folded) == 2
    assert folded[0].count('<span class="badge unchanged">unchanged</span>') == 0
    assert folded[1].count('<span class="badge unchanged">unchanged</span>') == unchanged


@needs_matplotlib
def test_write_report_replaces_a_file_whole(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "report.html"
    write_report(out, study_runs(1))
    first = out.read_text()
    write_report(out, study_runs(2), run_index=0)
    assert out.read_text().count("<svg") == first.count("<svg")
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]


def test_without_matplotlib_the_error_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # find_spec then finds nothing
    with pytest.raises(MissingMatplotlib, match=r"pip install 'pytest-servebench\[report\]'"):
        require_matplotlib()


# --- in a browser ------------------------------------------------------------------------------

# The report in a frame as wide as the screen it is tested for (headless chromium's window is
# at least 500 px wide, a phone's is narrower): what the browser laid out is written into the
# title, which --dump-dom returns. The report itself runs no script.
FRAME = """<!DOCTYPE html><html><head><title>pending</title>
<style>body {{ margin: 0; }} iframe {{ border: 0; display: block; }}</style></head><body>
<iframe id="report" src="{src}" style="width: {width}px; height: {height}px"></iframe>
<script>
window.addEventListener("load", () => {{
  const doc = document.getElementById("report").contentDocument;
  const svgs = [...doc.querySelectorAll("figure svg")];
  document.title = JSON.stringify({{
    viewport: doc.defaultView.innerWidth,
    overflow: doc.documentElement.scrollWidth - doc.documentElement.clientWidth,
    svgs: svgs.length,
    drawn: svgs.filter(s => s.getBoundingClientRect().width > 200
                            && s.getBoundingClientRect().height > 80).length,
    paths: doc.querySelectorAll("figure svg path").length}});
}});
</script></body></html>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """The headless browser. Missing, the browser tests skip saying so; with
    ``SERVEBENCH_REQUIRE_CHROMIUM=1`` (CI sets it: .ci/run installs chromium) they fail."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("SERVEBENCH_REQUIRE_CHROMIUM"):
            pytest.fail("SERVEBENCH_REQUIRE_CHROMIUM is set but no chromium is on PATH")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    return found


def _browse(chromium: str, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-extensions", "--allow-file-access-from-files", *args,
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True)


def _not_blank(png: Path) -> tuple[int, float]:
    """Distinct colours, and the share of pixels that are not the page's background."""
    from PIL import Image

    with Image.open(png) as im:
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        return len(colours), 1 - max(colours)[0] / (rgb.width * rgb.height)


@needs_matplotlib
@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_a_browser_renders_the_plots(chromium: str, tmp_path: Path, width: int) -> None:
    pytest.importorskip("PIL", reason="pillow reads the screenshot (the [targets] extra)")
    import json

    report = write_report(tmp_path / "report.html", study_runs(3))
    frame = tmp_path / "frame.html"
    frame.write_text(FRAME.format(src=report.name, width=width, height=2400))
    window = f"--window-size={max(width, 500)},2400"
    dom = _browse(chromium, frame, window, "--dump-dom").stdout
    title = re.search(r"<title>(\{.*?)</title>", dom, re.S)
    assert title is not None, dom[:2000]
    seen = json.loads(title.group(1))
    assert seen["viewport"] == width, seen
    assert seen["svgs"] == FIGURES and seen["drawn"] == FIGURES, seen
    assert seen["paths"] > 100, seen
    # Nothing wider than the screen: wide tables scroll inside their box, figures shrink.
    assert seen["overflow"] <= 0, seen

    shot = Path(os.environ.get("SERVEBENCH_SCREENSHOTS", tmp_path)) / f"report-{width}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    _browse(chromium, frame, window, f"--screenshot={shot}")
    colours, inked = _not_blank(shot)
    assert colours > 50 and inked > 0.05, (colours, inked)


def test_the_figures_docstring_example_runs() -> None:
    import doctest

    failures, attempted = doctest.testmod(fg, optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failures == 0
