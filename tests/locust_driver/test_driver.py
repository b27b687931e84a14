"""The Locust driver end to end: a real master and real workers (processes) against loopback
servers, read back into the same ``Result`` the in-process engine gives."""

from __future__ import annotations

import importlib.util
import os
import sys
import time

import pytest

from pytest_servebench.backends.http import HttpTarget
from pytest_servebench.backends.local.processes import tagged_processes
from pytest_servebench.fixture import Servebench
from pytest_servebench.locust_driver import DriverError, run_locust, run_locust_result
from pytest_servebench.settings import Settings
from pytest_servebench.target import Payload
from pytest_servebench.workloads import ClosedLoop, OpenLoop

from ..loopback import Behaviour, LoopbackServer

# find_spec, not importorskip: importing locust monkey-patches this whole process with gevent.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("locust") is None,
                                reason="the Locust driver needs locust (the [locust] extra)")


def _no_driver_processes() -> bool:
    return not any("pytest_servebench.locust_driver.runner" in _cmdline(pid)
                   for pid in tagged_processes())


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_seeded_open_loop_sends_exactly_its_schedule_across_workers() -> None:
    workload = OpenLoop(rate=150, duration=2, seed=11)
    with LoopbackServer(Behaviour(delay_s=0.002)) as srv:
        bench = Servebench(target=HttpTarget(srv.url), settings=Settings(driver="locust",
                                                                         workers=2))
        result = bench.run(workload, payload=b"x")
        assert srv.requests == len(workload.schedule())
    assert result.count == len(workload.schedule()) and result.success_ratio == 1.0
    assert result.records is not None
    intended = sorted(r.intended_s for r in result.records)
    assert intended == workload.schedule()  # each timed from its intended send
    assert result.target_profile["url"] == srv.url
    assert _no_driver_processes()
    # Locust (and gevent's monkey-patching) stays in the driver's own processes
    assert "locust" not in sys.modules and "gevent" not in sys.modules


def test_a_stall_shows_in_the_tail_as_users_would_see_it() -> None:
    """Coordinated omission: the server holds every request arriving in the first 0.6 s of
    every 2 s. Timed from the intended send, requests in a window wait up to 0.6 s; a paced
    closed loop would report a few ms."""
    workload = OpenLoop(rate=100, duration=4, seed=2, arrival="constant")
    with LoopbackServer(Behaviour(delay_s=0.001, stall_from_s=0.0, stall_for_s=0.6,
                                  stall_every_s=2.0)) as srv:
        result = Servebench(target=HttpTarget(srv.url)).run(workload, payload=b"x",
                                                            driver="locust", workers=2)
    assert result.records is not None
    stalled = [r.latency_s for r in result.records if r.latency_s > 0.1]
    # 4 s hold two periods, whatever their phase: 2 x 0.6 s x 100/s = 120 requests held
    assert 90 <= len(stalled) <= 150, len(stalled)
    assert 0.45 < max(stalled) < 0.8
    # 30% of requests are held, evenly over (0, 0.6] s: p90 is about 0.4 s
    assert 0.25 < result.metric("p90").value < 0.55 and result.p99.value > 0.45


def test_a_closed_loop_runs_its_users_and_counts() -> None:
    with LoopbackServer(Behaviour(delay_s=0.01)) as srv:
        bench = Servebench(target=HttpTarget(srv.url))
        result = bench.run(ClosedLoop(concurrency=3, requests=90, warmup_requests=6),
                           payload=b"x", driver="locust", workers=2)
        assert srv.requests == 96 and srv.max_in_flight == 3
    assert result.count == 90 and result.success_ratio == 1.0
    # three users on a 10 ms server: at most 300/s; the window keeps the drain out
    assert 150 < result.throughput < 310, result.throughput


def test_errors_come_back_by_kind() -> None:
    with LoopbackServer(Behaviour(status=503)) as srv:
        result = Servebench(target=HttpTarget(srv.url)).run(
            OpenLoop(rate=50, duration=1, seed=1), payload=b"x", driver="locust", workers=1)
    assert result.success_ratio == 0.0 and set(result.errors) == {"http_503"}


def test_workers_that_never_come_fail_fast_with_the_logs() -> None:
    t0 = time.monotonic()
    with LoopbackServer() as srv, pytest.raises(DriverError) as info:
        run_locust(HttpTarget(srv.url), OpenLoop(rate=10, duration=1), [Payload(b"x")],
                   workers=2, local_workers=0, timeout_s=2, time_limit_s=5,
                   start_timeout_s=2)
    assert "not every worker connected in time" in str(info.value)
    assert "0 of 2 Locust workers" in str(info.value)  # the master's own log
    assert time.monotonic() - t0 < 30
    assert _no_driver_processes()


def test_a_target_without_a_url_is_refused_before_anything_starts() -> None:
    class NoUrl:
        name = "queue:f"

        def describe(self) -> dict[str, str]:
            return {}

    with pytest.raises(DriverError, match="Lambda's Invoke API; queue:f has neither"):
        run_locust(NoUrl(), OpenLoop(rate=1, duration=1), [Payload(b"x")],  # type: ignore[arg-type]
                   workers=1, timeout_s=1, time_limit_s=1)


def test_bad_driver_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="driver is one of inprocess, locust"):
        Settings(driver="k6")
    with pytest.raises(ValueError, match="at least 1 worker"):
        Settings(workers=0)
    with pytest.raises(ValueError, match="HOST:PORT"):
        Settings(locust_master="nohost")
    assert os.environ.get("SERVEBENCH_PROVIDER") is None


def test_by_default_workers_ship_tallies_not_records() -> None:
    workload = OpenLoop(rate=200, duration=1.5, seed=6)
    with LoopbackServer(Behaviour(delay_s=0.001)) as srv:
        result = run_locust_result(HttpTarget(srv.url), workload, [Payload(b"x")], workers=2,
                                   timeout_s=5, time_limit_s=30)
        assert srv.requests == len(workload.schedule())
    assert result.records == () and result.count == len(workload.schedule())
    assert result.success_ratio == 1.0 and result.schedule_lag is not None
    assert 0.001 < result.p50.value < 0.05 and result.p50.bounded
    assert result.throughput == pytest.approx(200, rel=0.2)
    assert result.target_profile["url"] == srv.url
    assert _no_driver_processes()


def test_progress_comes_from_the_workers_while_the_run_goes() -> None:
    from pytest_servebench.progress import Snapshot

    shown: list[Snapshot] = []
    workload = OpenLoop(rate=100, duration=2.5, seed=3)
    with LoopbackServer(Behaviour(delay_s=0.002)) as srv:
        result = run_locust_result(HttpTarget(srv.url), workload, [Payload(b"x")], workers=2,
                                   timeout_s=5, time_limit_s=30, progress=shown.append)
    assert len(shown) >= 5 and shown[-1].final and not any(s.final for s in shown[:-1])
    done = [s.done for s in shown]
    # Counts grow while the run goes (the first snapshot may come before any reply on a busy
    # machine: CI's showed 0) and end at the result's.
    assert done == sorted(done) and done[-1] == result.count
    assert any(0 < d < result.count for d in done), done
    assert all(s.sent >= s.done for s in shown) and shown[-1].errors == 0
    assert 0.001 < shown[-1].p50_s < 0.05


def test_a_master_that_hangs_is_ended_within_the_hang_bound_with_its_logs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_servebench.locust_driver as driver

    monkeypatch.setattr(driver, "_RUNNER", "tests.locust_driver.hang")
    monkeypatch.setattr(driver, "HANG_S", 2.0)
    t0 = time.monotonic()
    with LoopbackServer() as srv, pytest.raises(DriverError, match="stopped answering"):
        run_locust_result(HttpTarget(srv.url), OpenLoop(rate=10, duration=1), [Payload(b"x")],
                          workers=2, timeout_s=30, time_limit_s=600)
    assert time.monotonic() - t0 < 15  # not the 690 s outer bound
    assert not any("tests.locust_driver.hang" in _cmdline(pid) for pid in tagged_processes())


def test_a_share_that_fails_in_a_worker_ends_the_run_at_once_with_its_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker whose share cannot start (here: a target it cannot build a client for) tells
    the master, which ends the run with the error in its log; it used to wait out the time
    limit with nothing sent."""
    import pytest_servebench.locust_driver as driver

    monkeypatch.setattr(driver, "_target_spec",
                        lambda target: {"kind": "http", "url": "gopher://127.0.0.1:9/"})
    t0 = time.monotonic()
    with pytest.raises(DriverError, match="a worker's share failed") as info:
        run_locust_result(HttpTarget("http://127.0.0.1:9/"), OpenLoop(rate=10, duration=1),
                          [Payload(b"x")], workers=2, timeout_s=30, time_limit_s=600)
    assert "share failed: ValueError" in str(info.value)
    assert time.monotonic() - t0 < 60  # not the 600 s time limit
    assert _no_driver_processes()


def test_a_bad_pacing_is_refused_before_any_process_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_servebench.pacing import PacingError

    monkeypatch.setenv("SERVEBENCH_PACING", "busy")
    with pytest.raises(PacingError, match="SERVEBENCH_PACING='busy'"):
        run_locust_result(HttpTarget("http://127.0.0.1:9/"), OpenLoop(rate=10, duration=1),
                          [Payload(b"x")], workers=1, timeout_s=30, time_limit_s=600)
    assert _no_driver_processes()


def test_arrivals_beyond_the_in_flight_bound_are_dropped_and_counted() -> None:
    workload = OpenLoop(rate=100, duration=1, seed=8, max_in_flight=2)
    with LoopbackServer(Behaviour(delay_s=0.2)) as srv:
        result = run_locust_result(HttpTarget(srv.url), workload, [Payload(b"x")], workers=2,
                                   timeout_s=5, time_limit_s=30)
        assert srv.max_in_flight <= 2
    assert result.count == len(workload.schedule())
    assert set(result.errors) == {"dropped"} and result.errors["dropped"] > result.count / 2
    assert result.ok_count == srv.requests


def test_the_fixture_without_records_reads_tallies_and_shows_progress() -> None:
    """``Servebench.run`` with ``keep_records=False`` (``servebench load``'s setting): the
    workers ship histograms, not every request, and the run's progress comes from them."""
    from pytest_servebench.progress import Snapshot

    shown: list[Snapshot] = []
    workload = OpenLoop(rate=120, duration=2.5, seed=4)
    with LoopbackServer(Behaviour(delay_s=0.002)) as srv:
        bench = Servebench(target=HttpTarget(srv.url),
                           settings=Settings(driver="locust", workers=2, keep_records=False),
                           progress=lambda what: shown.append)
        result = bench.run(workload, payload=b"x")
        assert srv.requests == len(workload.schedule())
    assert result.records == () and result.count == len(workload.schedule())
    assert result.success_ratio == 1.0 and 0.001 < result.p50.value < 0.05
    assert result.workload["str"] == str(workload)
    assert shown and shown[-1].final and shown[-1].done == result.count
    assert _no_driver_processes()
