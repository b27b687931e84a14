"""REPORT lines from CloudWatch Logs when an invocation's log tail lacks one (issue #17), against
moto's Logs service: the query, late lines, the bounded wait, and a recording completed."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest

from pytest_servebench.backends.aws.logs import CloudWatchReports
from pytest_servebench.functions.client import REPORT_MISSING, FunctionTarget, reply_from_invoke
from pytest_servebench.functions.report import InvocationReport, encode_tail
from pytest_servebench.records import Record, Recording
from pytest_servebench.target import Reply

from .conftest import Moto

GROUP_OF = "/aws/lambda/{}"


def _report(request_id: str, *, init_ms: float | None = None) -> InvocationReport:
    return InvocationReport(request_id, duration_ms=12.5, billed_duration_ms=13,
                            memory_size_mb=1024, max_memory_used_mb=180,
                            init_duration_ms=init_ms)


def _put(logs: Any, function: str, lines: list[str]) -> None:
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=GROUP_OF.format(function), logStreamName="2026/11/25/[$LATEST]abc",
        logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)])


@pytest.fixture
def logs(aws_env: Moto) -> Any:
    client = boto3.client("logs", region_name="us-east-1")
    return client


def _group(logs: Any, function: str) -> None:
    logs.create_log_group(logGroupName=GROUP_OF.format(function))
    logs.create_log_stream(logGroupName=GROUP_OF.format(function),
                           logStreamName="2026/11/25/[$LATEST]abc")


def test_reports_are_read_by_request_id_among_other_lines(logs: Any) -> None:
    _group(logs, "fn-a")
    _put(logs, "fn-a", ["START RequestId: r1 Version: $LATEST", "some handler output",
                        _report("r1", init_ms=812.0).line(), "END RequestId: r1",
                        _report("r2").line(), _report("other").line()])
    since = time.time() - 5
    found = CloudWatchReports(logs, timeout_s=0).reports("fn-a", {"r1", "r2"},
                                                         since_unix_s=since)
    assert set(found) == {"r1", "r2"}
    assert found["r1"].init_duration_ms == 812.0 and found["r1"].cold_start
    assert found["r2"].billed_duration_ms == 13 and not found["r2"].cold_start


def test_a_late_line_is_waited_for_and_a_missing_one_only_as_long_as_allowed(
        logs: Any) -> None:
    _group(logs, "fn-b")
    since = time.time() - 5
    later = threading.Timer(1.0, _put, args=(logs, "fn-b", [_report("late").line()]))
    later.start()
    t0 = time.monotonic()
    found = CloudWatchReports(logs, timeout_s=20, interval_s=0.2).reports(
        "fn-b", {"late"}, since_unix_s=since)
    waited = time.monotonic() - t0
    later.join()
    assert set(found) == {"late"} and 0.9 <= waited < 10
    t0 = time.monotonic()
    found = CloudWatchReports(logs, timeout_s=1.0, interval_s=0.2).reports(
        "fn-b", {"late", "never"}, since_unix_s=since)
    assert set(found) == {"late"} and 0.9 <= time.monotonic() - t0 < 5


def _invoke_reply(request_id: str, *, tail: str | None) -> Reply:
    headers = {"x-amzn-requestid": request_id}
    if tail is not None:
        headers["x-amz-log-result"] = tail
    raw = Reply(ok=True, status=200, extra={"headers": headers, "body": b'{"label": 1}'})
    return reply_from_invoke(raw, proxied=False)


def test_a_recording_is_completed_from_the_logs(logs: Any) -> None:
    """Three replies: a tail with its REPORT, a tail cut before it, no tail at all. The two
    without are filled in from the log group; one whose line never comes stays marked."""
    _group(logs, "fn-c")
    cut = encode_tail("START RequestId: b\n" + "x" * 5000)
    replies = [_invoke_reply("a", tail=encode_tail(_report("a").line())),
               _invoke_reply("b", tail=cut), _invoke_reply("c", tail=None),
               _invoke_reply("d", tail=None)]
    assert replies[0].duration_s == 0.0125 and REPORT_MISSING not in replies[0].extra
    assert [r.extra.get(REPORT_MISSING) for r in replies[1:]] == ["b", "c", "d"]
    assert all(r.duration_s is None for r in replies[1:])
    _put(logs, "fn-c", [_report("b", init_ms=900.0).line(), _report("c").line()])
    recording = Recording(records=tuple(Record(i, False, i * 0.1, i * 0.1, i * 0.1 + 0.05, r)
                                        for i, r in enumerate(replies)),
                          started_unix_s=time.time() - 2, measure_start_s=0.0,
                          measure_end_s=0.5, wall_s=0.5, max_in_flight=1, scheduled=False)
    target = FunctionTarget("http://127.0.0.1:9", "fn-c:1", name="lambda:fn-c",
                            reports=CloudWatchReports(logs, timeout_s=0.5, interval_s=0.1))
    done = target.complete(recording)
    b, c, d = (r.reply for r in done.records[1:])
    assert b.cold_start is True and b.init_duration_s == 0.9 and b.billed_duration_s == 0.013
    assert c.cold_start is False and c.max_memory_mb == 180.0
    assert b.extra["report_from"] == "logs" and REPORT_MISSING not in b.extra
    assert d.duration_s is None and d.extra[REPORT_MISSING] == "d"
    assert done.records[0] == recording.records[0]
    # without a source (the local platform always sends its tail), nothing changes
    assert FunctionTarget("http://127.0.0.1:9", "fn-c").complete(recording) is recording
