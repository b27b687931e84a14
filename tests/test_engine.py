from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from pytest_servebench import HttpTarget, Servebench, Settings
from pytest_servebench.workloads import ClosedLoop, OpenLoop

from .loopback import LoopbackServer

Start = Callable[..., LoopbackServer]


def bench(server: LoopbackServer | str, **settings: float) -> Servebench:
    url = server if isinstance(server, str) else server.url
    return Servebench(target=HttpTarget(url), settings=Settings(**settings))  # type: ignore[arg-type]


@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_closed_loop_never_exceeds_concurrency(loopback: Start, concurrency: int) -> None:
    server = loopback(delay_s=0.002)
    r = bench(server).run(ClosedLoop(concurrency=concurrency, requests=300), payload=b"x")
    assert r.count == 300 and r.success_ratio == 1.0
    assert server.requests == 300
    assert r.max_in_flight == concurrency
    assert server.max_in_flight <= concurrency


def test_percentiles_match_numpy_on_raw_records(loopback: Start) -> None:
    server = loopback(delay_s=0.001)
    r = bench(server).run(ClosedLoop(concurrency=4, requests=800), payload=b"x")
    raw = np.array([rec.latency_s for rec in r.records if rec.reply.ok and not rec.warmup])
    assert len(raw) == 800
    for name, q in (("p50", .5), ("p90", .9), ("p95", .95), ("p99", .99), ("p999", .999)):
        assert getattr(r.latency, name).value == pytest.approx(float(np.quantile(raw, q)))
    assert r.latency.mean.value == pytest.approx(float(raw.mean()))
    assert r.latency.max.value == pytest.approx(float(raw.max()))
    # The histogram agrees within its 1% relative accuracy.
    assert r.histogram.quantile(0.5) == pytest.approx(float(np.quantile(raw, .5)), rel=0.03)


def test_stall_shows_in_open_loop_tail_but_hides_in_closed_loop(loopback: Start) -> None:
    # A 300 ms stall 1 s into a 3 s run: open-loop users arriving during it all wait, so about
    # 10% of requests see up to 300 ms. A single closed-loop client sends one request into the
    # stall and waits: one slow sample, and the tail looks healthy (coordinated omission).
    server = loopback(delay_s=0.001, stall_from_s=1.0, stall_for_s=0.3)
    server.start_clock()
    open_r = bench(server).run(OpenLoop(rate=200, duration=3, seed=1), payload=b"x")
    assert open_r.success_ratio == 1.0
    assert open_r.latency.p99.value > 0.2
    assert open_r.latency.p95.value > 0.05  # half the stalled requests waited > 150 ms
    stalled = [rec for rec in open_r.records if 1.05 < rec.intended_s < 1.25]
    assert stalled and all(rec.latency_s > 0.05 for rec in stalled)

    server.start_clock()
    closed_r = bench(server).run(ClosedLoop(concurrency=1, duration=3), payload=b"x")
    assert closed_r.latency.max.value > 0.2  # the one request that hit the stall
    assert closed_r.latency.p90.value < 0.02  # ...but the tail does not show it


def test_seeded_schedules_give_exact_counts(loopback: Start) -> None:
    server = loopback()
    w = OpenLoop(rate=150, duration=1, arrival="constant")
    r = bench(server).run(w, payload=b"x")
    assert r.count == 150 and server.requests == 150
    p = OpenLoop(rate=150, duration=1, seed=11)
    r2 = bench(server).run(p, payload=b"x")
    assert r2.count == len(p.schedule())
    intended = [rec.intended_s for rec in r2.records]
    assert intended == pytest.approx(p.schedule())
    assert r2.schedule_lag is not None
    assert all(rec.sent_s >= rec.intended_s for rec in r2.records)


def test_in_flight_cap_counts_as_lag_and_latency(loopback: Start) -> None:
    server = loopback(delay_s=0.02)
    r = bench(server).run(OpenLoop(rate=200, duration=1, arrival="constant", max_in_flight=1),
                          payload=b"x")
    # One connection at 20 ms per request serves 50/s of the 200/s asked for: the queue grows,
    # schedule lag grows with it and so does latency measured from the intended time.
    assert r.schedule_lag is not None and r.schedule_lag.late > 100
    assert r.schedule_lag.max_s > 0.5
    assert r.latency.p99.value > r.schedule_lag.p99_s * 0.9
    assert server.max_in_flight == 1


def test_warmup_is_recorded_but_not_counted(loopback: Start) -> None:
    server = loopback()
    r = bench(server).run(ClosedLoop(concurrency=2, requests=100, warmup_requests=40),
                          payload=b"x")
    assert r.count == 100 and r.warmup_count == 40 and server.requests == 140
    assert sum(rec.warmup for rec in r.records) == 40
    o = bench(server).run(OpenLoop(rate=100, duration=1, warmup=0.5, arrival="constant"),
                          payload=b"x")
    assert o.count == 100 and o.warmup_count == 50


def test_dead_target_gives_errors_not_a_hang() -> None:
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    r = bench(f"http://127.0.0.1:{port}/").run(ClosedLoop(concurrency=2, requests=20),
                                                payload=b"x")
    assert time.monotonic() - t0 < 5
    assert r.count == 20 and r.success_ratio == 0 and set(r.errors) == {"connect"}


def test_timeouts_bound_a_silent_server(loopback: Start) -> None:
    server = loopback(delay_s=30)
    t0 = time.monotonic()
    r = bench(server, timeout_s=0.2).run(OpenLoop(rate=20, duration=0.5, arrival="constant"),
                                         payload=b"x")
    assert time.monotonic() - t0 < 3
    assert r.errors == {"timeout": 10}


def test_target_dying_mid_run(loopback: Start) -> None:
    server = loopback(delay_s=0.001)
    threading.Timer(0.5, server.__exit__, args=(None, None, None)).start()
    t0 = time.monotonic()
    r = bench(server, timeout_s=1).run(OpenLoop(rate=100, duration=1.5, arrival="constant"),
                                       payload=b"x")
    assert time.monotonic() - t0 < 6
    assert r.count == 150
    assert 20 < r.ok_count < 130
    assert sum(r.errors.values()) == 150 - r.ok_count


def test_time_limit_bounds_a_run(loopback: Start) -> None:
    server = loopback(delay_s=0.001)
    t0 = time.monotonic()
    r = bench(server, time_limit_s=0.5).run(ClosedLoop(concurrency=2, duration=60),
                                            payload=b"x")
    assert time.monotonic() - t0 < 3
    assert r.count > 0 and r.duration_s < 2


def test_http_errors_are_counted_with_detail(loopback: Start) -> None:
    server = loopback(status=503, body=b"overloaded")
    r = bench(server).run(ClosedLoop(concurrency=1, requests=5), payload=b"x")
    assert r.errors == {"http_503": 5}
    assert r.records[0].reply.detail == "overloaded"


def test_connection_close_after_each_reply(loopback: Start) -> None:
    server = loopback(close_after_reply=True)
    r = bench(server).run(ClosedLoop(concurrency=2, requests=50), payload=b"x")
    assert r.success_ratio == 1.0 and server.requests == 50


def test_payloads_are_sent_round_robin(loopback: Start) -> None:
    server = loopback()
    bench(server).run(ClosedLoop(concurrency=1, requests=4),
                      payloads=[b"a", "b", {"c": 1}])
    assert server.bodies == [b"a", b"b", b'{"c": 1}', b"a"]
