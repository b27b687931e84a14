"""The platform backends bill each server from its launch to its termination (``bills``), at the
hourly price of the book the caller priced it with; the session's summary shows these bills
(``tests/test_summary_bills.py``). The launcher is faked: no process is started."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_servebench.pricebook import load_price_book

from .test_gpu_servers import RecordingLauncher, backend


def test_a_stopped_server_is_billed_from_launch_to_termination() -> None:
    before = time.time()
    with backend("local", RecordingLauncher()) as b:
        server = b.server("mobilenet_v2", platform="ec2", instance_type="c5.large")
        assert b.bills == []  # still running: no bill yet
        b.stop_server(server)
        assert len(b.bills) == 1
        kept = b.server("mobilenet_v2", platform="fargate", instance_type=None, vcpu=0.5,
                        memory_gb=1)
    bill, last = b.bills  # close() terminated the second one
    assert (bill.name, bill.platform, bill.basis, bill.usd_per_hour) == (
        server.name, "ec2", "c5.large", 0.085)
    assert before <= bill.launched_unix == server.profile["launched_unix"] <= bill.ended_unix
    assert bill.terminated and bill.billed_s == 60.0  # a minute at least
    assert last.name == kept.name and last.basis == "0.5 vCPU / 1 GB x86_64"


def test_a_custom_price_book_prices_the_bill(tmp_path: Path) -> None:
    import json

    book_path = load_price_book().path
    doc = json.loads(Path(book_path).read_text())
    doc["ec2"]["c5.large"]["usd_per_hour"] = 1.5
    custom = tmp_path / "prices.json"
    custom.write_text(json.dumps(doc))
    with backend("local", RecordingLauncher()) as b:
        b.server("mobilenet_v2", platform="ec2", instance_type="c5.large",
                 prices=load_price_book(custom))
    assert [x.usd_per_hour for x in b.bills] == [1.5]


def test_stopping_a_server_not_started_here_bills_nothing() -> None:
    from pytest_servebench.backends.base import ServerTarget

    with backend("local", RecordingLauncher()) as b, pytest.raises(LookupError):
        b.stop_server(ServerTarget("http://127.0.0.1:1/predict", "elsewhere"))
    assert b.bills == []
