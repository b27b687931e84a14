"""Options, SLO markers and the history fail early and clearly (issue 15): a bad option is a usage
error at start-up (exit status 4, one line on stderr) before any target is deployed; a malformed
``@pytest.mark.slo`` is a collection error of its test; an unusable history is reported and kept
(exit status 1), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_servebench.backends.local.processes import servebench_processes
from pytest_servebench.slo import SLOSyntaxError, parse_slo

from .loopback import LoopbackServer

# If anything got as far as deploying, these files say so.
CONFTEST = """
import pytest
from pytest_servebench.plugin import BACKEND_KEY

@pytest.hookimpl(wrapper=True)
def pytest_servebench_make_target(config, name):
    open("deployed", "w").close()
    return (yield)

@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    if BACKEND_KEY in config.stash:
        open("backend", "w").close()
"""

BENCH = """
from pytest_servebench import ClosedLoop

def test_bench(servebench):
    open("ran", "w").close()
    servebench.run(ClosedLoop(concurrency=1, requests=5), payload={"text": "x"})
"""

LAMBDA = ["--target=lambda", "--servebench-model=text_rf"]


@dataclass
class Watched:
    ret: int
    stdout: str
    stderr: str
    elapsed_s: float
    children: set[int]  # servebench-tagged processes the run started


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def run_watched(pytester: pytest.Pytester, *args: str) -> Watched:
    """Run pytest in a subprocess, watching for servebench-tagged processes it starts."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                            cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    children: set[int] = set()
    while proc.poll() is None:
        children |= {pid for pid in servebench_processes() if _ppid(pid) == proc.pid}
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=60)
    return Watched(proc.returncode, stdout, stderr, time.monotonic() - start, children)


BAD_OPTIONS = [
    (["--target=nosuch"],
     "--target=nosuch: no backend provides this target (built in: http, lambda, *)"),
    (["--target=no such"], "--target=no such: expected a target name *"),
    (["--target=http"], "--target=http needs --servebench-url=URL"),
    (["--target=http", "--servebench-url=ftp://example.com/"],
     "--servebench-url=ftp://example.com/: expected an http:// or https:// URL with a host*"),
    (["--target=http", "--servebench-url=http://:80/"], "--servebench-url=http://:80/: *"),
    ([*LAMBDA, "--servebench-memory-mb=5"],
     "--servebench-memory-mb: Lambda memory is 128..10240 MB, not 5"),
    ([*LAMBDA, "--servebench-memory-mb=99999"],
     "--servebench-memory-mb: Lambda memory is 128..10240 MB, not 99999"),
    (["--target=fargate", "--servebench-model=text_rf", "--servebench-task-size=1-2"],
     "--servebench-task-size: expected VCPU/GB like 1/2 (two positive numbers), got '1-2'"),
    (["--target=fargate", "--servebench-model=text_rf", "--servebench-task-size=0/2"],
     "--servebench-task-size: * got '0/2'"),
    ([*LAMBDA, "--servebench-compare-fail=p99:fast"],
     "--servebench-compare-fail=p99:fast: cannot read threshold 'p99:fast': expected "
     "METRIC:VALUE[[]%]*"),
    ([*LAMBDA, "--servebench-compare=median:0"],
     "--servebench-compare=median:0: median:N needs N >= 1*"),
    ([*LAMBDA, "--servebench-compare=median:x"],
     "--servebench-compare=median:x: cannot read 'median:x': expected median:N*"),
    ([*LAMBDA, "--servebench-keep=-5"],
     "--servebench-keep: expected a number of runs per test >= 0 (0 keeps every run), got -5"),
    ([*LAMBDA, "--servebench-prices=missing.json"],
     "--servebench-prices: price book missing.json does not exist"),
    ([*LAMBDA, "--servebench-records=conftest.py"],
     "--servebench-records=conftest.py: expected a directory, but that is a file"),
]


@pytest.mark.parametrize(("args", "message"), BAD_OPTIONS,
                         ids=[args[-1].lstrip("-") for args, _ in BAD_OPTIONS])
def test_bad_option_is_a_usage_error_before_anything_is_deployed(
        pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(BENCH)
    result = run_watched(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr
    pytest.LineMatcher(errors).fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stdout + result.stderr
    left = {p.name for p in pytester.path.iterdir()} & {"ran", "deployed", "backend"}
    assert not left, f"{left} although {args} is a usage error"
    assert result.children == set()
    assert result.elapsed_s < 15  # seconds: pytest's own start-up on a busy machine


def test_bad_price_book_from_the_environment(pytester: pytest.Pytester,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVEBENCH_PRICES", str(pytester.path / "gone.json"))
    pytester.makepyfile(BENCH)
    result = pytester.runpytest_subprocess(*LAMBDA)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: $SERVEBENCH_PRICES: price book *gone.json does not exist"])


def test_good_options_still_run(pytester: pytest.Pytester,
                                loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(BENCH)
    result = pytester.runpytest(
        "--target=http", f"--servebench-url={server.url}", "--servebench-keep=0",
        "--servebench-compare=median:3", "--servebench-compare-fail=p99:20%",
        "--servebench-memory-mb=128", "--servebench-task-size=0.25/0.5",
        f"--servebench-records={pytester.path / 'records'}")
    result.assert_outcomes(passed=1)
    assert server.requests == 5


def test_a_target_a_conftest_provides_is_not_rejected(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makeconftest(f"""
import contextlib
from pytest_servebench import HttpTarget

def pytest_servebench_make_target(config, name):
    if name == "staging":
        return contextlib.nullcontext(HttpTarget("{server.url}", name="staging"))
""")
    pytester.makepyfile(BENCH)
    pytester.runpytest("--target=staging").assert_outcomes(passed=1)
    # A name no implementation provides is found when a test asks for the target: the hook
    # would deploy to answer, so it is not asked at start-up.
    result = pytester.runpytest("--target=nosuch")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--target=nosuch: no backend provides this target*"])
    assert server.requests == 5


def test_a_target_in_a_deeper_conftest_is_found_at_collection(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    sub = pytester.mkpydir("sub")
    (sub / "conftest.py").write_text(f"""
import contextlib
from pytest_servebench import HttpTarget

def pytest_servebench_make_target(config, name):
    if name == "staging":
        return contextlib.nullcontext(HttpTarget("{server.url}", name="staging"))
""")
    (sub / "test_deep.py").write_text(BENCH)
    pytester.runpytest("--target=staging").assert_outcomes(passed=1)


MARKERS = """
import pytest

@pytest.mark.slo(123)
def test_not_a_string(servebench):
    open("ran", "w").close()

@pytest.mark.slo("p50 < 1s", "p101 < 1s")
@pytest.mark.parametrize("c", [1, 2])
def test_p101(servebench, c):
    open("ran", "w").close()

@pytest.mark.slo("p99 < -5ms")
def test_negative(servebench):
    open("ran", "w").close()

class TestKeywords:
    @pytest.mark.slo(p99="1s")
    def test_keyword(self, servebench):
        open("ran", "w").close()

@pytest.mark.parametrize("c", [1, pytest.param(2, marks=pytest.mark.slo("p99 under 3ms"))])
def test_one_param(servebench, c):
    open("ran", "w").close()

"""

GOOD_MARKERS = """
import pytest
from pytest_servebench import ClosedLoop
from pytest_servebench.slo import parse_slo

@pytest.mark.slo("max < 10s", parse_slo("success_ratio >= 0.5"))
def test_good(servebench):
    servebench.run(ClosedLoop(concurrency=1, requests=5), payload=b"x")
"""


def test_bad_slo_markers_are_collection_errors(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(test_markers=MARKERS, test_good_markers=GOOD_MARKERS)
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=5)
    result.stdout.fnmatch_lines_random([
        "test_not_a_string: @pytest.mark.slo(123): a bound is a string such as 'p99 < 200ms', "
        "not int",
        "test_p101: @pytest.mark.slo: 'p101 < 1s': no percentile above 100*",
        "test_negative: @pytest.mark.slo: 'p99 < -5ms': a latency bound cannot be negative",
        "TestKeywords::test_keyword: @pytest.mark.slo takes bounds as strings*not keywords*",
        "test_one_param[[]2]: @pytest.mark.slo: cannot read SLO 'p99 under 3ms'*",
        "ERROR *::test_not_a_string*", "ERROR *::test_p101*", "ERROR *::test_negative*",
        "ERROR *::TestKeywords::test_keyword*", "ERROR *::test_one_param*",
        "*Interrupted: 5 errors during collection*",
    ])
    # Once per test, not once per parameter; nothing ran, nothing was sent.
    assert result.stdout.str().count("'p101 < 1s': no percentile") == 1
    assert "Traceback" not in result.stdout.str()
    assert not (pytester.path / "ran").exists()
    assert server.requests == 0
    # Without the bad module the good one runs: an SLO object is a valid bound too.
    good = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                              "test_good_markers.py")
    good.assert_outcomes(passed=1)
    assert server.requests == 5


def test_parse_slo_rejects_percentiles_above_100_and_negative_latency() -> None:
    for text in ("p101 < 1s", "p100.5 < 1s", "cold_start_p1000 < 1s"):
        with pytest.raises(SLOSyntaxError, match="no percentile above 100"):
            parse_slo(text)
    for text in ("p99 < -5ms", "mean <= -1s", "cold_start > -2ms"):
        with pytest.raises(SLOSyntaxError, match="a latency bound cannot be negative"):
            parse_slo(text)
    for text in ("p100 < 1s", "p999 < 1s", "p9999 < 1s", "p99.9 < 1s", "p0 < 1s",
                 "p99 < 0ms"):
        parse_slo(text)


def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 4)


def _json(text: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_text(text)

    return write


def _directory(path: Path) -> None:
    path.mkdir()
    (path / "inside.txt").write_text("mine")


@pytest.mark.parametrize(("make", "message"), [
    (_garbage, "is not valid JSON: it is not UTF-8 text (binary data? *); it was left as it "
               "is.*"),
    (_json('{"schema_version": 2, "runs": 5}'), "has no list of runs; it was left as it is"),
    (_json("[1, 2]"),
     "is not a pytest-servebench history: run 0 is int, not an object; it was left as it is*"),
    (_json('{"schema_version": 2, "runs": [{"run_id": "x"}]}'),
     "is not a pytest-servebench history: run 0 has no list of entries; it was left as it is*"),
    (_json('{"schema_version": 2, "runs": [{"entries": [{"nodeid": "t"}]}]}'),
     "is not a pytest-servebench history: entry 0 of run 0 has no key; it was left as it is*"),
    (_json('{"schema_version": 1, "runs": [{"entries": ["x"]}]}'),
     "is not a pytest-servebench history: entry 0 of run 0 is str, not an object; it was*"),
    (_json('"just a string"'), "has no schema_version; it was left as it is"),
    (_directory, "is a directory, not a history file; it was left as it is.*"),
], ids=["binary", "runs-not-a-list", "list-of-ints", "run-without-entries", "entry-without-key",
        "old-version-bad-entry", "a-string", "directory"])
@pytest.mark.parametrize("compare", [False, True], ids=["save", "compare"])
def test_unusable_history_is_reported_and_kept(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer],
        make: Callable[[Path], None], message: str, compare: bool) -> None:
    server = loopback()
    pytester.makepyfile(BENCH)
    history = pytester.path / "hist.json"
    make(history)
    before = _snapshot(history)
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                                f"--servebench-history={history}",
                                *(["--servebench-compare"] if compare else []))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"servebench error: history: {history} {message}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert _snapshot(history) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_history_is_reported_and_kept(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(BENCH)
    history = pytester.path / "hist.json"
    history.write_text('{"schema_version": 2, "runs": []}')
    history.chmod(0)
    try:
        result = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                                    f"--servebench-history={history}")
    finally:
        history.chmod(0o644)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["servebench error: history: *hist.json cannot be read "
                                 "(Permission denied); it was left as it is"])
    assert history.read_text() == '{"schema_version": 2, "runs": []}'


def _snapshot(path: Path) -> object:
    if path.is_dir():
        return sorted((p.name, p.read_bytes()) for p in path.iterdir())
    return path.read_bytes()


def test_a_read_error_is_reported_and_kept(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_servebench.history import History, HistoryError, new_run

    path = tmp_path / "hist.json"
    path.write_text('{"schema_version": 2, "runs": []}')
    real = Path.read_bytes

    def refuse(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    message = "hist.json cannot be read [(]Permission denied[)]; it was left as it is"
    with pytest.raises(HistoryError, match=message):
        History.at(path).runs()
    with pytest.raises(HistoryError, match=message):
        History.at(path).append(new_run([], backend="local"))
    monkeypatch.undo()
    assert path.read_text() == '{"schema_version": 2, "runs": []}'
