"""Benchmarks under pytest-xdist: a study's cases and findings stay on one worker, and no two
measurements on one machine overlap.

* Grouping. A study module fills a session-scoped store with its cases and reads it in its
  findings at the end of the file; under plain ``--dist=load`` xdist spreads those tests over
  workers, each with its own session, and the findings skip. So when ``-n N`` runs with the
  default ``load`` mode, the controller switches to ``--dist=loadgroup`` and each worker marks
  every test of a module that uses the ``servebench`` (or ``servebench_backend``) fixture with
  ``xdist_group(<module>)``. ``--servebench-xdist-group=off`` turns this off.

  xdist tells the controller a test's group by appending ``@<group>`` to its node id; this
  module puts the plain id back once the worker has sent its collection (the controller
  schedules by index from then on), so reports, the history and records keep the ids a serial
  run gives.

* Measuring one at a time. Every ``Servebench.run`` holds a machine-wide file lock
  (``machine_lock``) for the measured drive only: while one worker measures, the others may
  deploy, build or run other tests, but not measure. The wait is bounded by the run's own
  bounds plus a margin.

Loaded by ``plugin.pytest_configure``; it imports nothing heavy and works without xdist.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

LOCK_ENV = "SERVEBENCH_MACHINE_LOCK"
LOCK_NAME = "servebench-machine.lock"
# On top of the waiting run's own time limit and request timeout: the holder's summary-free
# drive is bounded the same way, so this covers a holder with the same settings plus slack.
LOCK_MARGIN_S = 60.0
_POLL_S = 0.01  # short, so a waiter gets in between another worker's back-to-back runs
BENCH_FIXTURES = ("servebench", "servebench_backend")

_MODULES_KEY = pytest.StashKey[int]()   # controller: benchmark modules the workers collected
_CRASHED_KEY = pytest.StashKey[list[str]]()
_ENDED_KEY = pytest.StashKey["_Ended"]()
_PLAIN_ID_KEY = pytest.StashKey[str]()  # worker item: its node id before xdist's @group


class MachineLockTimeout(RuntimeError):
    """Another benchmark on this machine held the lock for longer than this run may wait."""


def machine_lock_path() -> Path | None:
    """``$SERVEBENCH_MACHINE_LOCK``, else ``/tmp/servebench-machine.lock`` (the system temp
    dir off POSIX); None when the variable is ``off``."""
    raw = os.environ.get(LOCK_ENV, "")
    if raw.strip().lower() == "off":
        return None
    if raw:
        return Path(raw)
    base = Path("/tmp") if os.name == "posix" and Path("/tmp").is_dir() else \
        Path(tempfile.gettempdir())
    return base / LOCK_NAME


@contextmanager
def machine_lock(wait_s: float) -> Iterator[float]:
    """Hold the machine-wide benchmark lock; yields how long it took to get it. Raises
    ``MachineLockTimeout`` after ``wait_s`` seconds of waiting."""
    path = machine_lock_path()
    if path is None:
        yield 0.0
        return
    from filelock import FileLock, Timeout

    # 0o666: one lock for every user of the machine (a file another user created stays usable).
    lock = FileLock(str(path), mode=0o666)
    t0 = time.monotonic()
    try:
        lock.acquire(timeout=wait_s, poll_interval=_POLL_S)
    except Timeout:
        raise MachineLockTimeout(
            f"servebench: waited {wait_s:.0f}s for the machine-wide benchmark lock {path} "
            "(another benchmark on this machine is measuring: an xdist worker or another "
            f"session); rerun, raise --servebench-time-limit, or set {LOCK_ENV} to another "
            "path (or to 'off') to measure concurrently on purpose") from None
    except OSError as exc:
        raise MachineLockTimeout(
            f"servebench: cannot use the machine-wide benchmark lock {path}: {exc}; set "
            f"{LOCK_ENV} to a writable path (or to 'off')") from exc
    try:
        yield time.monotonic() - t0
    finally:
        lock.release()


# --- controller ------------------------------------------------------------------------------

def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _distributing(config: pytest.Config) -> bool:
    return getattr(config.option, "dist", "no") != "no" and bool(getattr(config.option, "tx",
                                                                         None))


def pytest_configure(config: pytest.Config) -> None:
    if _is_worker(config):
        # xdist derives a worker's `loadgroup` from the worker's own command line, where the
        # switch below is not visible: take the controller's word for it.
        if _grouping_on_worker(config):
            config.option.loadgroup = True
        return
    if _distributing(config):
        ended = config.stash[_ENDED_KEY] = _Ended()
        config.pluginmanager.register(ended, "servebench-xdist-ended")
    if (_distributing(config) and config.option.dist == "load"
            and config.getoption("servebench_xdist_group") == "module"):
        config.option.dist = "loadgroup"
        if getattr(config.option, "maxworkerrestart", None) is None:
            # pytest-xdist 3.8 hangs in loadgroup mode when it replaces a crashed worker (the
            # new worker is never given tests: pytest-xdist#1323, fixed by #1328). Not
            # replacing it ends the session with the crash reported; --max-worker-restart
            # given explicitly is left as it is.
            config.option.maxworkerrestart = "0"


def _grouping_on_worker(config: pytest.Config) -> bool:
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    return bool(workerinput.get("servebench_dist") == "loadgroup"
                and config.getoption("servebench_xdist_group") == "module")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput["servebench_dist"] = node.config.option.dist


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    output = getattr(node, "workeroutput", None) or {}
    modules = int(output.get("servebench_modules", 0))
    config = node.config
    config.stash[_MODULES_KEY] = max(config.stash.get(_MODULES_KEY, 0), modules)
    if error:
        config.stash[_CRASHED_KEY] = [*config.stash.get(_CRASHED_KEY, []),
                                      str(getattr(node.gateway, "id", node))]


class _Ended:
    """The controller's tests that ended (or crashed) in this session."""

    def __init__(self) -> None:
        self.nodeids: set[str] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" or not report.passed:  # a crash's report has no phase
            self.nodeids.add(report.nodeid)


def _report_lost_tests(terminalreporter: Any, config: pytest.Config) -> None:
    """A crashed worker is not replaced under loadgroup (see pytest_configure); the tests it
    still held are not run, and xdist says nothing of them: say how many."""
    crashed = config.stash.get(_CRASHED_KEY, [])
    collected = getattr(terminalreporter._session, "testscollected", 0) or 0
    ended = config.stash.get(_ENDED_KEY, None)
    lost = collected - len(ended.nodeids) if ended is not None else 0
    if crashed and lost > 0:
        terminalreporter.write_line(
            f"servebench: xdist: worker {', '.join(crashed)} crashed and was not replaced "
            f"(--dist=loadgroup: pytest-xdist#1323); {lost} test(s) it held did NOT run",
            red=True, bold=True)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _is_worker(config) or not _distributing(config):
        return
    _report_lost_tests(terminalreporter, config)
    if not config.stash.get(_MODULES_KEY, 0):
        return
    workers = len(config.option.tx)
    modules = config.stash[_MODULES_KEY]
    path = machine_lock_path()
    lock = f"machine-wide lock {path}" if path is not None else f"{LOCK_ENV}=off: NOT locked"
    dist = config.option.dist
    if dist == "loadgroup" and config.getoption("servebench_xdist_group") == "module":
        grouping = (f"benchmarks grouped by module (--dist=loadgroup: {modules} module(s), "
                    "each on one worker)")
    else:
        grouping = (f"--dist={dist}, benchmark modules not grouped by servebench (a module's "
                    "cases and findings may run on different workers)")
    terminalreporter.write_line(
        f"servebench: xdist: {workers} workers; {grouping}; measured one at a time ({lock})")


# --- worker ----------------------------------------------------------------------------------

def _module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _is_worker(config):
        return
    modules = {_module_of(item) for item in items
               if any(f in getattr(item, "fixturenames", ()) for f in BENCH_FIXTURES)}
    config.workeroutput["servebench_modules"] = len(modules)  # type: ignore[attr-defined]
    if not _grouping_on_worker(config):
        return
    for item in items:
        module = _module_of(item)
        if module in modules:
            item.stash[_PLAIN_ID_KEY] = item.nodeid
            item.add_marker(pytest.mark.xdist_group(name=module))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> Generator[None, None, None]:
    yield  # xdist sends the (suffixed) collection to the controller in here
    for item in session.items:
        plain = item.stash.get(_PLAIN_ID_KEY, None)
        if plain is not None and item.nodeid.startswith(plain + "@"):
            item._nodeid = plain  # what xdist itself assigns to; pytest has no setter
