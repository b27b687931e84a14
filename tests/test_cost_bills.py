"""A server's bill (its hourly price for the whole time it existed) beside its cost per million:
priced from a result, kept in the history, and shown by the summary, where a terminated
server's bill replaces what its results knew."""

from __future__ import annotations

import pytest

from pytest_servebench.cost import CostEstimate, ServerBill, load_price_book, price_result
from pytest_servebench.history import Entry, make_entry
from pytest_servebench.records import Record, Recording
from pytest_servebench.report import render_bills
from pytest_servebench.result import summarize
from pytest_servebench.session import BenchSession, SessionOptions
from pytest_servebench.target import Reply

BOOK = load_price_book()
LAUNCHED = 1_000_000.0


def _recording(n: int, *, start: float) -> Recording:
    rows = tuple(Record(i, False, i * 0.01, i * 0.01, i * 0.01 + 0.005, Reply(ok=True))
                 for i in range(n))
    return Recording(rows, start, 0.0, 1.0, 1.0, 1, False)


def _entry(name: str, profile: dict[str, object], *, start: float, n: int = 100) -> Entry:
    result = summarize(_recording(n, start=start), target=name,
                       target_profile={"kind": "server", "backend": "docker", **profile},
                       workload={"str": "closed(c=1)"})
    estimate = price_result(result, BOOK)
    assert estimate is not None
    return make_entry(f"t.py::test_{n}", result.with_cost(estimate), [], "docker")


def test_a_server_result_is_priced_per_million_and_billed_from_launch() -> None:
    entry = _entry("ec2:c5.large:m", {"platform": "ec2", "instance_type": "c5.large",
                                      "launched_unix": LAUNCHED}, start=LAUNCHED + 300)
    cost = entry.cost
    assert cost is not None and cost.usd_per_hour == 0.085
    bill = cost.server_bill
    assert bill is not None and not bill.terminated and bill.name == "ec2:c5.large:m"
    assert bill.billed_s == pytest.approx(301.0)  # to the end of the run (1 s long)
    assert bill.usd == pytest.approx(0.085 * 301 / 3600)
    assert cost.usd_per_million == pytest.approx(0.085 / 3600 / 100 * 1e6)
    # A function, and a server whose launch is unknown, have no bill.
    unknown = _entry("ec2:c5.large:m", {"platform": "ec2", "instance_type": "c5.large"},
                     start=LAUNCHED)
    assert unknown.cost is not None and unknown.cost.server_bill is None
    assert unknown.cost.usd_per_hour == 0.085


def test_the_bill_survives_the_history_and_old_entries_read_without_one() -> None:
    entry = _entry("fargate:0.5vCPU-1GB:m", {"platform": "fargate", "vcpu": 0.5,
                                             "memory_gb": 1, "launched_unix": LAUNCHED},
                   start=LAUNCHED + 10)
    back = Entry.from_json(entry.to_json())
    assert back.cost == entry.cost and back.cost is not None
    assert back.cost.server_bill is not None and back.cost.server_bill.billed_s == 60.0  # min
    old = {k: v for k, v in entry.to_json()["cost"].items()
           if k not in ("usd_per_hour", "server_bill")}
    legacy = CostEstimate.from_dict(old)
    assert legacy.usd_per_hour is None and legacy.server_bill is None
    assert legacy.usd_per_request == back.cost.usd_per_request


def test_a_terminated_servers_bill_replaces_what_its_results_knew() -> None:
    profile = {"platform": "ec2", "instance_type": "c5.large", "launched_unix": LAUNCHED}
    entries = [_entry("ec2:c5.large:m", profile, start=LAUNCHED + 100, n=100),
               _entry("ec2:c5.large:m", profile, start=LAUNCHED + 200, n=50)]
    lines = render_bills(entries)
    # Billed to the end of its last run (the server ran on); per million at 100/s and 50/s.
    assert lines[2].split() == ["ec2:c5.large:m", "0.085", "201", "s", "its", "last", "run",
                                "$0.0047", "$0.2361..$0.4722"]
    assert lines[-1].startswith("its last run:")
    stopped = ServerBill("ec2:c5.large:m", "ec2", "c5.large", 0.085, LAUNCHED + 0.0004,
                         LAUNCHED + 3600)
    never_measured = ServerBill("sagemaker:ml.c5.large:m", "sagemaker", "ml.c5.large", 0.102,
                                LAUNCHED, LAUNCHED + 30)
    lines = render_bills(entries, bills=[stopped, never_measured])
    assert lines[2].split() == ["ec2:c5.large:m", "0.085", "3600", "s", "termination",
                                "$0.0850", lines[2].split()[-1]]
    assert lines[3].split() == ["sagemaker:ml.c5.large:m", "0.102", "60", "s", "termination",
                                "$0.0017", "-"]
    assert not any(line.startswith("its last run:") for line in lines)


def test_the_session_summary_has_a_bills_section_only_for_priced_servers() -> None:
    from pathlib import Path

    session = BenchSession(SessionOptions(history_path=Path("h.json"), save=False))
    session.entries.append(_entry("ec2:c5.large:m", {"platform": "ec2",
                                                     "instance_type": "c5.large"}, start=0.0))
    texts = [(line.heading, line.text) for line in session.summary()]
    assert (True, "servebench server bills") in texts
    assert any(t.startswith("-: the docker backend records no launch time") for _, t in texts)
    lone = ServerBill("ec2:c5.large:m", "ec2", "c5.large", 0.085, 0.0, 120.0)
    empty = BenchSession(SessionOptions(history_path=Path("h.json"), save=False))
    assert [line.text for line in empty.summary()] == []
    billed = [line.text for line in empty.summary(bills=[lone])]
    assert billed[0] == "servebench server bills" and "termination" in billed[3]
