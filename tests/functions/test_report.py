"""REPORT lines in AWS's exact format: moto's Lambda returns no logs without Docker, so the
parser is tested here on lines as AWS prints them (documented examples, tab-separated)."""

from __future__ import annotations

import base64

import pytest

from pytest_servebench.functions.report import (
    LOG_TAIL_BYTES,
    InvocationReport,
    ReportParseError,
    billed_ms,
    decode_tail,
    encode_tail,
    find_report,
    parse_report,
)

WARM = ("REPORT RequestId: 3604209a-e9a3-11e6-939a-754dd98c7be3\tDuration: 12.34 ms\t"
        "Billed Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 18 MB\t")
COLD = ("REPORT RequestId: 5f3b5b6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b\tDuration: 2.09 ms\t"
        "Billed Duration: 117 ms\tMemory Size: 1024 MB\tMax Memory Used: 39 MB\t"
        "Init Duration: 114.13 ms\t")
XRAY = ("XRAY TraceId: 1-5e34a614-10bdb2d0f6e5d5f86b14e5a8\tSegmentId: 4a6b5d1b2fa5b8bd\t"
        "Sampled: true\t")
TIMEOUT = ("REPORT RequestId: b1c2d3e4-0000-4000-8000-000000000001\tDuration: 3003.44 ms\t"
           "Billed Duration: 3000 ms\tMemory Size: 128 MB\tMax Memory Used: 50 MB\t"
           "Init Duration: 140.85 ms\tStatus: timeout")
SNAPSTART = ("REPORT RequestId: c0ffee00-0000-4000-8000-000000000002\tDuration: 15.52 ms\t"
             "Billed Duration: 364 ms\tMemory Size: 512 MB\tMax Memory Used: 98 MB\t"
             "Restore Duration: 474.16 ms\tBilled Restore Duration: 348 ms\t")


def test_a_warm_line_has_no_init_duration() -> None:
    r = parse_report(WARM)
    assert r == InvocationReport(request_id="3604209a-e9a3-11e6-939a-754dd98c7be3",
                                 duration_ms=12.34, billed_duration_ms=13, memory_size_mb=128,
                                 max_memory_used_mb=18)
    assert not r.cold_start


def test_a_cold_line_carries_init_duration_last() -> None:
    r = parse_report(COLD)
    assert r.cold_start and r.init_duration_ms == pytest.approx(114.13)
    assert (r.duration_ms, r.billed_duration_ms, r.memory_size_mb) == (2.09, 117, 1024)


def test_status_and_snapstart_fields() -> None:
    assert parse_report(TIMEOUT).status == "timeout"
    snap = parse_report(SNAPSTART)
    assert snap.billed_duration_ms == 364 and not snap.cold_start


@pytest.mark.parametrize("line", [WARM, COLD, TIMEOUT])
def test_lines_round_trip_through_our_writer(line: str) -> None:
    r = parse_report(line)
    assert parse_report(r.line()) == r
    assert r.line().startswith("REPORT RequestId: ") and r.line().endswith("\t")


def test_our_writer_prints_aws_field_order() -> None:
    r = InvocationReport("id-1", 2.094, 117, 1024, 39, init_duration_ms=114.129)
    assert r.line() == ("REPORT RequestId: id-1\tDuration: 2.09 ms\tBilled Duration: 117 ms\t"
                        "Memory Size: 1024 MB\tMax Memory Used: 39 MB\tInit Duration: 114.13 ms\t")


def test_find_report_in_a_tail_with_logs_and_xray() -> None:
    tail = "\n".join(["START RequestId: x Version: $LATEST", "hello from the handler",
                      "END RequestId: x", COLD, XRAY, ""])
    r = find_report(tail)
    assert r is not None and r.cold_start
    assert find_report("START RequestId: x\nno report here\n") is None


@pytest.mark.parametrize("bad", [
    "START RequestId: x",
    "REPORT Duration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 1 MB",
    "REPORT RequestId: x\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 1 MB",
    "REPORT RequestId: x\tDuration: fast\tBilled Duration: 1 ms\tMemory Size: 128 MB\t"
    "Max Memory Used: 1 MB",
    "REPORT RequestId: x\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: big\t"
    "Max Memory Used: 1 MB",
])
def test_malformed_lines_are_refused_with_the_reason(bad: str) -> None:
    with pytest.raises(ReportParseError):
        parse_report(bad)


def test_billing_rounds_up_to_the_millisecond_and_counts_init() -> None:
    assert billed_ms(12.01) == 13
    assert billed_ms(12.0) == 12
    assert billed_ms(0.2) == 1
    assert billed_ms(2.09, 114.13) == 117  # init billed since 1 August 2025
    assert billed_ms(2.09, 114.13, bill_init=False) == 3


def test_log_tail_is_base64_of_the_last_4kb() -> None:
    log = "x" * 10_000 + "\n" + WARM
    header = encode_tail(log)
    raw = base64.b64decode(header)
    assert len(raw) == LOG_TAIL_BYTES
    assert find_report(decode_tail(header)) == parse_report(WARM)
