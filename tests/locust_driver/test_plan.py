"""How a workload is shared among Locust workers (``locust_driver.plan``): no Locust here."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_servebench.locust_driver.plan import WorkerPlan, split
from pytest_servebench.workloads import MMPP, ClosedLoop, OpenLoop


@given(rate=st.floats(5, 500), seed=st.integers(0, 2**16), workers=st.integers(1, 7),
       warmup=st.sampled_from([0.0, 0.5]))
def test_every_scheduled_arrival_goes_to_exactly_one_worker(rate: float, seed: int,
                                                            workers: int,
                                                            warmup: float) -> None:
    w = OpenLoop(rate=rate, duration=2, seed=seed, warmup=warmup)
    plans = split(w, workers)
    got = sorted((i, t, warm) for p in plans for i, t, warm in p.arrivals)
    schedule = w.schedule()
    assert [t for _, t, _ in got] == schedule  # the one seeded schedule, nothing added or lost
    assert [i for i, _, _ in got] == list(range(len(schedule)))
    assert all(warm == (t < warmup) for _, t, warm in got)
    sizes = [len(p.arrivals) for p in plans]
    assert max(sizes) - min(sizes) <= 1  # rate/N each
    assert sum(p.max_in_flight for p in plans) >= w.max_in_flight
    assert [p.index for p in plans] == list(range(workers))


def test_mmpp_shares_its_one_state_sequence() -> None:
    w = MMPP(rates=(20.0, 200.0), mean_dwell_s=(1.0, 0.5), duration=4, seed=3)
    plans = split(w, 3)
    assert sorted(t for p in plans for _, t, _ in p.arrivals) == w.schedule()


@pytest.mark.parametrize(("users", "requests", "workers", "expect_users", "expect_requests"), [
    (5, 100, 2, [3, 2], [60, 40]),
    (4, 10, 4, [1, 1, 1, 1], [3, 3, 2, 2]),
    (2, 7, 3, [1, 1, 0], [4, 3, 0]),
])
def test_closed_loop_users_and_requests_are_dealt_out(users: int, requests: int, workers: int,
                                                      expect_users: list[int],
                                                      expect_requests: list[int]) -> None:
    plans = split(ClosedLoop(concurrency=users, requests=requests, warmup_requests=3), workers)
    assert [p.users for p in plans] == expect_users
    assert [p.requests for p in plans] == expect_requests
    assert sum(p.warmup_requests for p in plans) == 3
    assert all(p.kind == "closed" for p in plans)


def test_a_duration_bound_closed_loop_keeps_its_duration_everywhere() -> None:
    plans = split(ClosedLoop(concurrency=3, duration="2s", warmup="1s"), 2)
    assert [p.duration_s for p in plans] == [2.0, 2.0] and [p.warmup_s for p in plans] == [
        1.0, 1.0]
    assert all(p.requests is None for p in plans)


def test_a_plan_survives_its_json_form() -> None:
    (plan,) = split(OpenLoop(rate=50, duration=1, seed=9), 1)
    assert WorkerPlan.from_json(plan.to_json()) == plan


def test_no_workers_is_refused() -> None:
    with pytest.raises(ValueError, match="workers must be >= 1"):
        split(OpenLoop(rate=1, duration=1), 0)
