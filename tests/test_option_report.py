"""--servebench-report."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from importlib.util import find_spec

import pytest

from .loopback import LoopbackServer

if find_spec("matplotlib") is not None:
    # pytester's in-process runs drop the modules an inner session imported: load matplotlib's
    # drawing modules out here, once, so every inner report uses the same ones.
    import matplotlib.backends.backend_svg
    import matplotlib.figure  # noqa: F401

needs_matplotlib = pytest.mark.skipif(
    find_spec("matplotlib") is None,
    reason="matplotlib is not installed (the [report] extra; [dev] includes it)")

TESTS = """
import pytest
from pytest_servebench import ClosedLoop

@pytest.mark.slo("p50 < 5s")
@pytest.mark.parametrize("users", [1, 2], ids=["users=1", "users=2"])
def test_sweep(servebench, users):
    servebench.run(ClosedLoop(concurrency=users, requests=20), payload=b"x")
"""


@pytest.fixture(params=[[], ["-p", "xdist", "-n", "2"]], ids=["plain", "xdist"])
def plugin_args(request: pytest.FixtureRequest) -> list[str]:
    if request.param:
        pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    return list(request.param)


@needs_matplotlib
def test_the_report_is_written_at_the_end(pytester: pytest.Pytester,
                                          loopback: Callable[..., LoopbackServer],
                                          plugin_args: list[str]) -> None:
    server = loopback()
    pytester.makepyfile(TESTS)
    history = pytester.path / "history.json"
    args = ["--target=http", f"--servebench-url={server.url}",
            f"--servebench-history={history}", "--servebench-report=out/report.html"]
    result = pytester.runpytest_subprocess(*plugin_args, *args) if plugin_args \
        else pytester.runpytest(*args)
    assert result.ret == 0, result.stdout.str()
    report = pytester.path / "out" / "report.html"
    result.stdout.fnmatch_lines([f"servebench info: report: {report}"])
    page = report.read_text()
    # Both results, their verdicts, a spectrum and the concurrency sweep.
    assert page.count("<small>[users=") == 2
    assert page.count('<span class="badge pass">p50 &lt; 5s: pass</span>') == 2
    assert page.count("<svg") == 2
    run_id = json.loads(history.read_text())["runs"][-1]["run_id"]
    assert f"<b>run</b> {run_id}" in page


@needs_matplotlib
def test_a_second_run_is_compared_and_trended(pytester: pytest.Pytester,
                                              loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(TESTS)
    args = ["--target=http", f"--servebench-url={server.url}", "--servebench-history=h.json"]
    assert pytester.runpytest(*args).ret == 0
    result = pytester.runpytest(*args, "--servebench-compare", "--servebench-report=r.html")
    assert result.ret in (0, 1), result.stdout.str()  # a loopback run may regress
    page = (pytester.path / "r.html").read_text()
    assert "Comparison with the baseline" in page and "2 result(s) compared" in page
    assert "<h3>History</h3>" in page and page.count("<svg") == 3


@needs_matplotlib
def test_an_unsaved_run_is_reported_all_the_same(pytester: pytest.Pytester,
                                                 loopback: Callable[..., LoopbackServer]
                                                 ) -> None:
    server = loopback()
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                                "--servebench-history=h.json", "--servebench-no-save",
                                "--servebench-report=r.html")
    assert result.ret == 0
    assert not (pytester.path / "h.json").exists()
    assert (pytester.path / "r.html").read_text().count("<small>[users=") == 2


@needs_matplotlib
def test_with_records_a_scheduled_run_is_drawn_request_by_request(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile("""
from pytest_servebench import OpenLoop

def test_open(servebench):
    servebench.run(OpenLoop(rate=100, duration=0.5, arrival="constant"), payload=b"x")
""")
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                                "--servebench-no-save", "--servebench-records=rec",
                                "--servebench-report=r.html")
    assert result.ret == 0
    page = (pytester.path / "r.html").read_text()
    assert "latency and drops over time" in page and "0 dropped" in page
    assert "scheduled result(s) lack" not in page


@needs_matplotlib
def test_a_session_that_measured_nothing_writes_no_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--servebench-report=r.html")
    assert result.ret == 0
    assert not (pytester.path / "r.html").exists()
    result.stdout.fnmatch_lines(["*--servebench-report: this session measured nothing; no "
                                 "report written*"])


def test_without_matplotlib_asking_for_a_report_is_a_usage_error(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # find_spec then finds nothing
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--servebench-report=r.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--servebench-report: the HTML report draws its figures with "
                                 "matplotlib, which is not installed: pip install "
                                 "'pytest-servebench[[]report[]]'*"])
    # Without the option nothing asks for matplotlib.
    assert pytester.runpytest().ret == 0


@needs_matplotlib
def test_a_directory_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.mkdir("out")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--servebench-report=out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--servebench-report=out: expected a file, but that is a "
                                 "directory"])
