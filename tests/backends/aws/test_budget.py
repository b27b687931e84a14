"""The budget guard's arithmetic: estimates from workloads and prices, refusal past the limit."""

from __future__ import annotations

import pytest

from pytest_servebench import MMPP, ClosedLoop, OpenLoop
from pytest_servebench.backends.aws.budget import (
    Budget,
    OverBudget,
    estimate_workload_usd,
    expected_requests,
)
from pytest_servebench.pricebook import load_price_book


def test_requests_of_each_workload_kind() -> None:
    assert expected_requests(ClosedLoop(concurrency=4, requests=100, warmup_requests=10),
                             assumed_duration_s=1.0) == 110
    # A closed loop for 10 s with 5 users at ~0.5 s a call: 100 calls.
    assert expected_requests(ClosedLoop(concurrency=5, duration="10s"),
                             assumed_duration_s=0.5) == pytest.approx(100)
    assert expected_requests(OpenLoop(rate=50, duration="20s", warmup="2s"),
                             assumed_duration_s=1.0) == pytest.approx(1100)
    bursts = MMPP(rates=[10, 30], mean_dwell_s=[5, 5], duration="60s")
    assert expected_requests(bursts, assumed_duration_s=1.0) == pytest.approx(
        bursts.mean_rate * 60)


def test_estimate_prices_duration_requests_and_provisioned_concurrency() -> None:
    book = load_price_book()
    wl = ClosedLoop(concurrency=1, requests=1_000_000)
    one_gb = estimate_workload_usd(wl, memory_mb=1024, book=book)
    # A million 1-second calls at 1 GB: 1e6 GB-s at the GB-s price plus the request price.
    assert one_gb == pytest.approx(1e6 * (book.lambda_usd_per_gb_s()
                                          + book.lambda_usd_per_request()))
    assert estimate_workload_usd(wl, memory_mb=2048, book=book) > 1.9 * one_gb
    assert estimate_workload_usd(wl, memory_mb=1024, book=book, arch="arm64") < one_gb
    pc = estimate_workload_usd(ClosedLoop(concurrency=1, requests=1), memory_mb=1024,
                               book=book, provisioned_concurrency=10, time_limit_s=3600)
    keep, _ = book.lambda_provisioned_usd_per_gb_s()
    assert pc == pytest.approx(10 * keep * 3600, rel=0.01)


def test_budget_refuses_before_sending_and_counts_what_was_spent() -> None:
    budget = Budget(limit_usd=0.05)
    budget.admit("t::a", 0.04)
    budget.charge("t::a", 0.03)
    with pytest.raises(OverBudget, match=r"t::b: estimated \$0.0300.*over its budget of \$0.05"):
        budget.admit("t::b", 0.03)
    budget.admit("t::c", 0.02)  # exactly at the limit is allowed
    with pytest.raises(ValueError):
        Budget(limit_usd=-1)


def test_a_finished_run_is_priced_by_its_request_count_as_a_workload_would_be() -> None:
    from pytest_servebench.backends.aws.budget import estimate_requests_usd

    book = load_price_book()
    assert estimate_requests_usd(500, memory_mb=2048, book=book, arch="arm64") == pytest.approx(
        estimate_workload_usd(ClosedLoop(concurrency=1, requests=500), memory_mb=2048,
                              book=book, arch="arm64"))
