"""A provisioned server's two prices: its results are priced per million and billed from its
launch (the profile says when), and once it is terminated its bill from launch to termination
replaces what the results knew in the summary. Control plane: moto; data path: a local
``servebench serve`` on loopback standing in for the instance (moto's runs nothing)."""

from __future__ import annotations

import time

import pytest

from pytest_servebench import ClosedLoop
from pytest_servebench.backends.aws import AwsBackend
from pytest_servebench.backends.aws.packaging import FunctionPackage
from pytest_servebench.cost import load_price_book, price_result
from pytest_servebench.engine import drive, run_sync
from pytest_servebench.history import make_entry
from pytest_servebench.report import render_bills
from pytest_servebench.result import summarize
from pytest_servebench.target import Payload

from .conftest import Moto

TEXT = Payload(b'{"text": "you are all wonderful"}', "application/json")


def test_an_ec2_server_is_billed_from_launch_to_termination(
        loopback_servers: Moto, tiny_package: FunctionPackage) -> None:
    before = round(time.time(), 3) - 0.001  # the profile keeps milliseconds
    with AwsBackend() as backend:
        server = backend.server("text_rf", platform="ec2", instance_type="c5.large")
        launched = server.profile["launched_unix"]
        assert before <= launched <= time.time()
        recording = run_sync(lambda: drive(server, ClosedLoop(concurrency=1, requests=20),
                                           [TEXT], timeout_s=30, time_limit_s=60))
        result = summarize(recording, target=server.name, target_profile=server.describe(),
                           workload={"str": "closed(c=1, 20 req)"})
        cost = price_result(result, load_price_book())
        assert cost is not None and cost.usd_per_hour == 0.085
        assert cost.server_bill is not None and not cost.server_bill.terminated
        assert cost.server_bill.launched_unix == launched
        entry = make_entry("t.py::test_x", result.with_cost(cost), [], "aws")
        backend.stop_server(server)
        (bill,) = backend.bills
        assert bill.terminated and bill.launched_unix == pytest.approx(launched, abs=0.001)
        assert bill.ended_unix >= cost.server_bill.ended_unix
        lines = render_bills([entry], bills=backend.bills)
        row = lines[2].split()
        assert row[:5] == ["ec2:c5.large:text_rf", "0.085", "60", "s", "termination"]
        assert row[5] == f"${bill.usd:.4f}" and row[6].startswith("$")
