"""The engine's Invoke API client: events for payloads and replies from responses."""

from __future__ import annotations

import base64
import json

from pytest_servebench.functions.client import event_for, reply_from_invoke
from pytest_servebench.functions.report import InvocationReport, encode_tail
from pytest_servebench.target import Payload, Reply

COLD = InvocationReport("r1", 20.5, 400, 1024, 71, init_duration_ms=379.2)
WARM = InvocationReport("r2", 12.25, 13, 1024, 72)


def _reply(body: bytes, report: InvocationReport | None = None, status: int = 200,
           **headers: str) -> Reply:
    h = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    if report is not None:
        h["x-amz-log-result"] = encode_tail(f"START\nhello\n{report.line()}\n")
    ok = 200 <= status < 400
    return Reply(ok=ok, status=status, error=None if ok else f"http_{status}",
                 extra={"body": body, "headers": h})


def test_json_payloads_are_direct_invokes_and_others_ride_a_proxy_event() -> None:
    direct = event_for(Payload(b'{"text": "hi"}', "application/json"))
    assert direct.body == b'{"text": "hi"}'
    proxied = json.loads(event_for(Payload(b"\xff\xd8jpeg", "image/jpeg")).body)
    assert proxied["isBase64Encoded"] is True
    assert base64.b64decode(proxied["body"]) == b"\xff\xd8jpeg"
    assert proxied["headers"]["content-type"] == "image/jpeg"


def test_cold_and_warm_figures_come_from_the_report_line() -> None:
    cold = reply_from_invoke(_reply(b"{}", COLD, X_Servebench_Sandbox_Id="sb1",
                                    X_Servebench_Init_Phases='{"model_load_s": 0.06}'),
                             proxied=False)
    assert cold.ok and cold.cold_start and cold.init_duration_s == 0.3792
    assert (cold.duration_s, cold.billed_duration_s, cold.max_memory_mb) == (0.0205, 0.4, 71.0)
    assert cold.sandbox_id == "sb1" and cold.extra["init_phases"] == {"model_load_s": 0.06}
    warm = reply_from_invoke(_reply(b"{}", WARM), proxied=False)
    assert warm.ok and warm.cold_start is False and warm.init_duration_s is None


def test_failures_are_named() -> None:
    throttled = reply_from_invoke(_reply(b'{"message": "Rate Exceeded."}', status=429),
                                  proxied=False)
    assert throttled.error == "throttled" and not throttled.ok
    fn_error = reply_from_invoke(_reply(b'{"errorType": "ValueError"}', WARM,
                                        X_Amz_Function_Error="Unhandled"), proxied=False)
    assert fn_error.error == "function_error" and "ValueError" in (fn_error.detail or "")
    assert fn_error.billed_duration_s == 0.013  # a failed call is billed all the same
    bad_input = reply_from_invoke(_reply(b'{"statusCode": 415, "body": "{}"}', WARM),
                                  proxied=True)
    assert bad_input.error == "http_415" and bad_input.status == 415
    garbled = _reply(b"{}")
    garbled.extra["headers"]["x-amz-log-result"] = base64.b64encode(
        b"REPORT RequestId: x\tDuration: soon\t").decode()
    assert reply_from_invoke(garbled, proxied=False).error == "bad_report"
    timeout = reply_from_invoke(Reply.failure("timeout", "no reply"), proxied=False)
    assert timeout.error == "timeout"
