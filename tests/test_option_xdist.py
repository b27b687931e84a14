"""Under xdist: a study module's cases and findings stay on one worker (--dist=loadgroup,
--servebench-xdist-group), and no two measurements on the machine overlap (machine lock)."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_servebench.xdist import LOCK_ENV, MachineLockTimeout, machine_lock

from .loopback import LoopbackServer

CONFTEST = """
import pytest

@pytest.fixture(scope="session")
def store():
    return {}

def pytest_report_header(config):
    return f"dist mode: {config.option.dist}"
"""

# A study in miniature: three cases fill the session store, the finding at the end reads
# them; each run's wall interval is appended to intervals.jsonl.
STUDY = """
import json
import pytest
from pytest_servebench import ClosedLoop

INTERVALS = {intervals!r}

def _measure(servebench, store, key):
    r = servebench.run(ClosedLoop(concurrency=1, duration=0.25), payload=b"x")
    with open(INTERVALS, "a") as f:
        f.write(json.dumps([r.started_unix_s, r.started_unix_s + r.duration_s]) + "\\n")
    store[key] = r

@pytest.mark.parametrize("case", [1, 2, 3])
def test_case(servebench, store, case):
    _measure(servebench, store, ("{name}", case))

def test_not_a_benchmark():
    pass

def test_finding(store):
    missing = [c for c in (1, 2, 3) if ("{name}", c) not in store]
    if missing:
        pytest.skip(f"cases {{missing}} ran elsewhere")
    assert all(store[("{name}", c)].count > 0 for c in (1, 2, 3))
"""


@pytest.fixture
def own_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lock file of this test's own (the workers inherit the environment), so that other
    sessions benchmarking on this machine neither wait for these tests nor slow them."""
    path = tmp_path / "machine.lock"
    monkeypatch.setenv(LOCK_ENV, str(path))
    return path


def _two_studies(pytester: pytest.Pytester) -> Path:
    intervals = pytester.path / "intervals.jsonl"
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(**{f"test_study_{n}": STUDY.format(intervals=str(intervals), name=n)
                           for n in ("a", "b")})
    return intervals


def _workers_by_module(lines: list[str]) -> dict[str, set[str]]:
    got: dict[str, set[str]] = {}
    for line in lines:
        m = re.match(r"\[(gw\d+)\] .*(?:PASSED|SKIPPED|FAILED) (\S+?\.py)::(\S+)", line)
        if m:
            got.setdefault(m.group(2), set()).add(m.group(1))
            assert "@" not in m.group(3), f"xdist's group suffix leaked into the id: {line}"
    return got


def test_cases_and_findings_stay_on_one_worker_and_never_overlap(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer],
        own_lock: Path) -> None:
    server = loopback(delay_s=0.002)
    intervals_file = _two_studies(pytester)
    result = pytester.runpytest_subprocess(
        "-n", "2", "-v", "-p", "no:cacheprovider", "--servebench-no-save",
        "--target=http", f"--servebench-url={server.url}")
    result.assert_outcomes(passed=10)  # (3 cases + 1 other + 1 finding) x 2, none skipped
    result.stdout.fnmatch_lines([
        "dist mode: loadgroup",
        "servebench: xdist: 2 workers; benchmarks grouped by module (--dist=loadgroup: "
        "2 module(s), each on one worker); measured one at a time (machine-wide lock "
        f"{own_lock})",
    ])
    workers = _workers_by_module(result.outlines)
    assert set(workers) == {"test_study_a.py", "test_study_b.py"}
    assert all(len(w) == 1 for w in workers.values()), workers
    assert len(set.union(*workers.values())) == 2, "both workers had a module"
    # (b) the six runs, three per worker, were measured one after another
    intervals = sorted(json.loads(line) for line in intervals_file.read_text().splitlines())
    assert len(intervals) == 6
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert start >= end - 1e-3, f"runs overlap: {intervals}"
    assert server.max_in_flight == 1  # every run has concurrency 1: more means two at once


def test_group_off_keeps_plain_load_distribution(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer],
        own_lock: Path) -> None:
    server = loopback()
    _two_studies(pytester)
    result = pytester.runpytest_subprocess(
        "-n", "2", "-v", "-p", "no:cacheprovider", "--servebench-no-save",
        "--servebench-xdist-group=off", "--target=http", f"--servebench-url={server.url}")
    # Findings may skip here: their cases may have run on the other worker.
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) == 10, outcomes
    result.stdout.fnmatch_lines([
        "dist mode: load",
        "servebench: xdist: 2 workers; --dist=load, benchmark modules not grouped by "
        "servebench*; measured one at a time (machine-wide lock*",
    ])
    _workers_by_module(result.outlines)  # no @group suffix either


def test_serial_run_is_unchanged(pytester: pytest.Pytester,
                                 loopback: Callable[..., LoopbackServer], own_lock: Path) -> None:
    server = loopback()
    _two_studies(pytester)
    result = pytester.runpytest("-p", "no:cacheprovider", "--servebench-no-save",
                                "--target=http", f"--servebench-url={server.url}")
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines(["dist mode: no"])
    result.stdout.no_fnmatch_line("*servebench: xdist*")


def test_a_crashed_worker_ends_the_session_instead_of_hanging(
        pytester: pytest.Pytester, own_lock: Path) -> None:
    """pytest-xdist 3.8 in loadgroup mode never gives a replacement worker any test, so the
    session hung after a worker crash; the plugin turns worker replacement off with loadgroup
    and the crash is reported."""
    pytester.makepyfile(test_crash="""
import os, signal
import pytest

def test_dies():
    os.kill(os.getpid(), signal.SIGKILL)

@pytest.mark.parametrize("n", range(20))
def test_quick(n): pass
""")
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider",
                                           "--servebench-no-save", timeout=120)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1, outcomes
    lost = 21 - 1 - outcomes.get("passed", 0)
    assert lost > 0, outcomes  # xdist hands each worker a share up front: the dead one's
    result.stdout.fnmatch_lines([f"*worker gw* crashed and was not replaced*; {lost} test(s) "
                                 "it held did NOT run", "*test_dies*crashed*"])


def test_machine_lock_waits_for_the_holder_and_is_bounded(own_lock: Path) -> None:
    from filelock import FileLock

    holder = FileLock(str(own_lock), thread_local=False)  # released by a timer thread
    holder.acquire()
    try:
        t0 = time.monotonic()
        with (pytest.raises(MachineLockTimeout, match="waited 0s for the machine-wide"),
              machine_lock(0.2)):
            pass
        assert 0.2 <= time.monotonic() - t0 < 2
        threading.Timer(0.3, holder.release).start()
        with machine_lock(5) as waited_s:
            assert 0.2 < waited_s < 3
    finally:
        if holder.is_locked:
            holder.release()


def test_machine_lock_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_ENV, "off")
    with machine_lock(0.1) as waited_s:
        assert waited_s == 0.0
