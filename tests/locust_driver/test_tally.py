"""Workers' tallies, added up, read the same Result as all their records: counts, errors,
throughput and maxima exactly, percentiles and their intervals within the histogram's 1%."""

from __future__ import annotations

import importlib.util
import json
import math
import random

import pytest

from pytest_servebench.histogram import DEFAULT_RELATIVE_ACCURACY
from pytest_servebench.locust_driver import recording_from
from pytest_servebench.locust_driver.tally import (
    Tally,
    Window,
    fallback_window,
    finish_info,
    record_of,
    result_from,
    row_of,
    tally,
    window_of,
)
from pytest_servebench.records import Record
from pytest_servebench.result import Result, summarize
from pytest_servebench.target import Reply
from pytest_servebench.workloads import ClosedLoop, OpenLoop

RES = DEFAULT_RELATIVE_ACCURACY
QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)


def _close(a: float, b: float) -> bool:
    if math.isinf(a) or math.isinf(b) or math.isnan(a) or math.isnan(b):
        return a == b or (math.isnan(a) and math.isnan(b))
    return abs(a - b) <= RES * abs(b) + 1e-12


def assert_agree(merged: Result, exact: Result) -> None:
    """The histogram-read result against the record-read one."""
    assert merged.count == exact.count and merged.errors == exact.errors
    assert merged.success_ratio == exact.success_ratio and merged.censored == exact.censored
    assert merged.warmup_count == exact.warmup_count
    assert merged.error_details == exact.error_details
    assert math.isclose(merged.throughput, exact.throughput, rel_tol=1e-9)
    assert merged.throughput_bins == exact.throughput_bins
    assert merged.window_s == exact.window_s and merged.duration_s == exact.duration_s
    assert merged.histogram == exact.histogram  # the same buckets, merged exactly
    assert merged.latency.max.value == exact.latency.max.value
    assert merged.latency.n == exact.latency.n
    for q in QUANTILES:
        m, e = merged.latency.percentile(q), exact.latency.percentile(q)
        assert _close(m.value, e.value), (q, m, e)
        assert _close(m.low, e.low) and _close(m.high, e.high), (q, m, e)
    assert _close(merged.latency.mean.value, exact.latency.mean.value)
    assert merged.offered_rate == exact.offered_rate
    if exact.schedule_lag is None:
        assert merged.schedule_lag is None
    else:
        lag, want = merged.schedule_lag, exact.schedule_lag
        assert lag is not None
        assert lag.late == want.late and lag.count == want.count and lag.max_s == want.max_s
        assert _close(lag.p50_s, want.p50_s) and _close(lag.p99_s, want.p99_s)
        assert merged.valid == exact.valid
    if exact.cold_starts is None:
        assert merged.cold_starts is None
    else:
        cold, want_cold = merged.cold_starts, exact.cold_starts
        assert cold is not None
        assert (cold.count, cold.warm_count) == (want_cold.count, want_cold.warm_count)
        assert _close(cold.latency.p50.value, want_cold.latency.p50.value)
        assert sorted(merged.billed_durations_s) == sorted(exact.billed_durations_s)
    for slo in ("p99 < 2ms", "p50 < 1ms", "success_ratio >= 0.9"):
        assert merged.metric(slo.split()[0]).n == exact.metric(slo.split()[0]).n


def _scheduled_records(n: int, seed: int) -> list[Record]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        intended = i / 500
        lag = rng.expovariate(1 / 0.0005) if rng.random() < 0.98 else rng.uniform(0.005, 0.02)
        took = rng.lognormvariate(math.log(0.0008), 0.6)
        roll = rng.random()
        if roll < 0.01:
            reply = Reply.failure("timeout", "no reply within 0.05s")
            took = 0.05
        elif roll < 0.03:
            reply = Reply.failure("http_503", f"overloaded {i}", status=503)
        elif roll < 0.035:
            reply = Reply.failure("dropped", "1024 requests already in flight")
            lag = took = 0.0
        else:
            cold = rng.random() < 0.05
            reply = Reply(ok=True, status=200, cold_start=cold,
                          init_duration_s=rng.uniform(0.1, 0.3) if cold else None,
                          billed_duration_s=math.ceil(took * 1000) / 1000)
        out.append(Record(i, intended < 0.2, intended, intended + lag,
                          intended + lag + took, reply))
    return out


def _deal(records: list[Record], workers: int) -> list[list[Record]]:
    return [records[k::workers] for k in range(workers)]


def _summarize(records: list[Record], m0: float, m1: float, *, scheduled: bool,
               completions: float | None = None) -> Result:
    from pytest_servebench.records import Recording

    ordered = tuple(sorted(records, key=lambda r: (r.intended_s, r.index)))
    wall = max(r.done_s for r in records)
    return summarize(Recording(ordered, 1000.0, m0, m1, wall, 7, scheduled, completions),
                     target="t", target_profile={}, workload={}, timeout_s=0.05)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_an_open_loop_read_from_tallies_agrees_with_its_records(workers: int) -> None:
    records = _scheduled_records(6000, seed=workers)
    shares = _deal(records, workers)
    window = window_of("scheduled", [finish_info(s) for s in shares], warmup_s=0.2,
                       duration_s=None)
    total = Tally()
    for share in shares:  # each worker's tally goes to the master as JSON
        total.merge(Tally.from_json(json.loads(json.dumps(
            tally(share, window, timeout_s=0.05, scheduled=True).to_json()))))
    merged = result_from(total, window, target="t", target_profile={}, workload={},
                         scheduled=True, started_unix_s=1000.0,
                         wall_s=max(r.done_s for r in records), max_in_flight=7,
                         timeout_s=0.05)
    exact = _summarize(records, window.start_s, window.end_s, scheduled=True)
    assert merged.records == () and exact.count == 5900
    assert_agree(merged, exact)


def _closed_records(users: int, per_user: int, warm: int, seed: int) -> list[list[Record]]:
    """Per user: back-to-back requests, the first ``warm`` of them warm-up."""
    rng = random.Random(seed)
    out = []
    for u in range(users):
        t = rng.uniform(0, 0.001)
        mine = []
        for j in range(per_user):
            took = rng.lognormvariate(math.log(0.002), 0.5)
            ok = rng.random() > 0.02
            reply = Reply(ok=True, status=200) if ok else Reply.failure("http_500", "boom")
            mine.append(Record(j * 64 + u, j < warm, t, t, t + took, reply))
            t += took + 0.00005
        out.append(mine)
    return out


def test_a_closed_loop_read_from_tallies_agrees_with_its_records() -> None:
    from pytest_servebench.records import closed_window

    users = _closed_records(users=6, per_user=400, warm=10, seed=5)
    shares = [users[0] + users[1] + users[2], users[3] + users[4] + users[5]]
    infos = [{**finish_info(s), "first_out": max(r.done_s for r in s if True)}
             for s in shares]
    window = window_of("closed", infos, warmup_s=0.0, duration_s=None)
    total = Tally()
    for share in shares:
        total.merge(tally(share, window, timeout_s=0.05, scheduled=False))
    assert total.in_window > 0
    merged = result_from(total, window, target="t", target_profile={}, workload={},
                         scheduled=False, started_unix_s=1000.0,
                         wall_s=max(r.done_s for s in shares for r in s), max_in_flight=7,
                         timeout_s=0.05)
    every = [r for s in shares for r in s]
    m0, m1, completions = closed_window(sorted(every, key=lambda r: (r.intended_s, r.index)),
                                        window.end_s)
    assert (m0, m1) == (window.start_s, window.end_s)
    exact = _summarize(every, m0, m1, scheduled=False, completions=completions)
    assert_agree(merged, exact)


def test_a_closed_loop_with_nothing_ok_in_its_steady_state_falls_back_as_the_records_do() -> None:
    from pytest_servebench.records import closed_window

    # two users, two requests each, the second user's only measured one failing late
    rows = [Record(0, False, 0.0, 0.0, 0.01, Reply(ok=True, status=200)),
            Record(1, False, 0.0, 0.0, 0.03, Reply.failure("http_500", "x"))]
    infos = [{**finish_info(rows), "first_out": 0.005}]
    window = window_of("closed", infos, warmup_s=0.0, duration_s=None)
    assert tally(rows, window, timeout_s=1, scheduled=False).in_window == 0
    window = fallback_window(infos)
    total = tally(rows, window, timeout_s=1, scheduled=False)
    merged = result_from(total, window, target="t", target_profile={}, workload={},
                         scheduled=False, started_unix_s=0.0, wall_s=0.03, max_in_flight=2,
                         timeout_s=1)
    m0, m1, completions = closed_window(rows, 0.005)
    assert (m0, m1, completions) == (window.start_s, window.end_s, 1.0)
    assert merged.throughput == 1 / 0.03


def test_records_travel_as_rows_and_come_back_the_same() -> None:
    rec = Record(3, False, 0.5, 0.501, 0.52,
                 Reply(ok=True, status=200, cold_start=True, init_duration_s=0.2,
                       billed_duration_s=0.02, sandbox_id="sb-1",
                       extra={"report_missing": "", "body": b"not shipped"}))
    back = record_of(json.loads(json.dumps(row_of(rec))))
    assert back.reply.extra == {"report_missing": ""}
    assert back == Record(3, False, 0.5, 0.501, 0.52, Reply(
        ok=True, status=200, cold_start=True, init_duration_s=0.2, billed_duration_s=0.02,
        sandbox_id="sb-1", extra={"report_missing": ""}))


def test_recording_from_the_masters_output_uses_the_same_window() -> None:
    rows = _scheduled_records(300, seed=9)
    data = {"t0": 5.0, "rows": [row_of(r) for r in rows],
            "done": {"0": {**finish_info(rows), "max_in_flight": 3, "first_out": None}}}
    recording = recording_from(data, OpenLoop(rate=500, duration=0.6, warmup=0.2))
    assert recording.measure_start_s == 0.2
    assert recording.measure_end_s == max(r.done_s for r in rows if not r.warmup)
    assert recording.max_in_flight == 3 and len(recording.records) == 300
    assert ClosedLoop(concurrency=1, requests=1).warmup_s == 0.0


needs_locust = pytest.mark.skipif(importlib.util.find_spec("locust") is None,
                                  reason="the Locust driver needs locust (the [locust] extra)")


@needs_locust
@pytest.mark.parametrize("workers", [1, 2])
def test_a_driver_run_reads_the_same_from_its_tallies_as_from_its_records(
        workers: int) -> None:
    """One run, both ways: the workers' tallies and every record they also shipped."""
    from pytest_servebench.backends.http import HttpTarget
    from pytest_servebench.locust_driver import _drive
    from pytest_servebench.target import Payload

    from ..loopback import Behaviour, LoopbackServer

    workload = OpenLoop(rate=400, duration=2, seed=4, warmup=0.2)
    with LoopbackServer(Behaviour(delay_s=0.001)) as srv:
        data = _drive(HttpTarget(srv.url), workload, [Payload(b"x")], workers=workers,
                      timeout_s=5, time_limit_s=30, master_bind="127.0.0.1",
                      master_port=None, local_workers=None, csv_prefix=None,
                      start_timeout_s=30, late_threshold_s=0.005, records=True)
    window = Window(*data["window"])
    finished = list(data["done"].values())
    merged = result_from(Tally.from_json(data["tally"]), window, target="t",
                         target_profile={}, workload={}, scheduled=True,
                         started_unix_s=data["t0"],
                         wall_s=max(d["wall_s"] for d in finished),
                         max_in_flight=sum(d["max_in_flight"] for d in finished), timeout_s=5)
    recording = recording_from(data, workload)
    exact = summarize(recording, target="t", target_profile={}, workload={}, timeout_s=5)
    assert exact.count == len(workload.schedule()) - sum(r.warmup for r in recording.records)
    assert_agree(merged, exact)
