"""Thousands of random payloads at each front door: no crash, no 5xx, the server keeps serving."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from targets import handler as lambda_handler
from targets.payloads import jpeg

CONTENT_TYPES = st.sampled_from([None, "image/jpeg", "image/png", "application/octet-stream",
                                 "application/json", "text/plain", "application/xml",
                                 "image/jpeg; charset=utf-8", "APPLICATION/JSON"])
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=20),
                     lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.sampled_from(["image_b64", "text", "x"]) | st.text(
                         max_size=5), kids, max_size=4), max_leaves=10)


@st.composite
def mutated_jpeg(draw: st.DrawFn) -> bytes:
    data = bytearray(jpeg(draw(st.integers(16, 96)), draw(st.integers(16, 96)),
                          seed=draw(st.integers(0, 3))))
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        return bytes(data[: draw(st.integers(0, len(data)))])
    return bytes(data)


BODIES = st.one_of(
    st.binary(max_size=512),
    mutated_jpeg(),
    _json.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda b: json.dumps({"image_b64": base64.b64encode(b).decode()}).encode(),
              mutated_jpeg()),
    st.builds(lambda t: json.dumps({"text": t}).encode(), st.text(max_size=200)),
)
FUZZ = settings(max_examples=1500, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_fuzz_http_door(app_factory: Any) -> None:
    app = app_factory("mobilenet_v2")
    statuses: list[int] = []

    @FUZZ
    @given(body=BODIES, ctype=CONTENT_TYPES)
    def one(body: bytes, ctype: str | None) -> None:
        status, answer = app.post(body, ctype)
        statuses.append(status)
        assert status < 500, answer
        assert status == 200 or answer.get("error") == "BadInput"

    one()
    assert len(statuses) >= 1000
    assert {200, 400} <= set(statuses), "the fuzzer should reach both outcomes"
    assert app.post(jpeg(), "image/jpeg")[0] == 200


def test_fuzz_lambda_door(core_factory: Any) -> None:
    lambda_handler._core = core_factory("mobilenet_v2")
    lambda_handler._init = None
    outcomes: list[str] = []

    @FUZZ
    @given(body=BODIES, ctype=CONTENT_TYPES, proxy=st.booleans())
    def one(body: bytes, ctype: str | None, proxy: bool) -> None:
        if proxy:
            event: Any = {"httpMethod": "POST", "requestContext": {}, "isBase64Encoded": True,
                          "headers": {"content-type": ctype} if ctype else {},
                          "body": base64.b64encode(body).decode()}
        else:
            try:
                event = json.loads(body)
            except ValueError:
                event = {"image_b64": base64.b64encode(body).decode()}
        try:
            reply = lambda_handler.handler(event, None)
        except lambda_handler.BadInput as exc:
            assert str(exc)[:3] in {"400", "413", "415", "422"}
            outcomes.append("error-object")
            return
        if proxy:
            assert reply["statusCode"] < 500, reply
            outcomes.append(str(reply["statusCode"]))
        else:
            outcomes.append("ok")

    one()
    assert len(outcomes) >= 1000 and "error-object" in outcomes and "400" in outcomes
