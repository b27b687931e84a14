"""Random requests at the Invoke API: every answer is a success or a 4xx in Lambda's error shape
(a function's own error comes as a 200 with X-Amz-Function-Error), never a 5xx, and the platform
keeps serving."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_servebench.functions.sigv4 import Credentials

from .conftest import config, signed_headers

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=20),
                     lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.text(max_size=5), kids, max_size=4), max_leaves=10)
BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=256),
    _json.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([b"1e400", b"NaN", b"-Infinity", b'{"a": 1e999}', b"\xef\xbb\xbf{}",
                     b'"\\ud800"', b"9" * 4400, b"{" * 10]),
    st.integers(256 * 1024 - 8, 256 * 1024 + 8).map(lambda n: b'"' + b"x" * n + b'"'),
)
_KNOWN = st.sampled_from(["fz-echo", "fz-fail", "arn:aws:lambda:us-east-1:000000000000:function:"
                          "fz-echo", "fz-echo:$LATEST", "000000000000:function:fz-fail",
                          "fz-echo:1:2:3"])
# Mostly deployed functions (a request that names none is only a 404).
NAMES = st.integers(0, 9).flatmap(
    lambda i: _KNOWN if i < 7 else st.just("no-such-function") if i == 7
    else st.text(min_size=1, max_size=70))
KINDS = st.one_of(st.sampled_from(["RequestResponse", "Event", "DryRun", None]),
                  st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                          max_size=20))
HEADER_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
EXTRA_HEADERS = st.dictionaries(
    st.sampled_from(["X-Amz-Log-Type", "Content-Type", "X-Amz-Client-Context", "Accept",
                     "X-Custom"]),
    st.one_of(st.just("Tail"), HEADER_VALUE), max_size=3)
# Now and then a payload hash header: signed, it must still be the body's.
PAYLOAD_HASH = st.integers(0, 9).flatmap(
    lambda i: st.none() if i < 9 else st.one_of(HEADER_VALUE, st.just("UNSIGNED-PAYLOAD")))
SIGNING = st.integers(0, 9).map(
    lambda i: "platform" if i < 6 else "role" if i < 8 else "none" if i == 8 else "stranger")
FUZZ = settings(max_examples=500, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def _send(srv: Any, conn: http.client.HTTPConnection, path: str, body: bytes,
          headers: dict[str, str], signing: str) -> tuple[int, dict[str, str], bytes]:
    creds: Credentials | None = {
        "platform": srv.credentials, "role": srv.platform.role_credentials,
        "stranger": Credentials("AKIASTRANGERSTRANGE", "x"), "none": None}[signing]
    netloc = f"127.0.0.1:{srv.port}"
    if creds is not None:
        headers = signed_headers(creds, "POST", f"http://{netloc}{path}", body, headers=headers)
    conn.request("POST", path, body=body, headers={**headers, "Host": netloc})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def test_fuzz_the_invoke_api(platform: Any) -> None:
    # A small cap: Event invocations must not start a sandbox each on a 2-core machine.
    platform.deploy(config("fz-echo", memory_mb=128, reserved_concurrency=2))
    platform.deploy(config("fz-fail", "fail", memory_mb=128, reserved_concurrency=2))
    seen: dict[int, int] = {}
    conn = http.client.HTTPConnection("127.0.0.1", platform.port, timeout=60)

    @FUZZ
    @given(name=NAMES, kind=KINDS, body=BODIES, extra=EXTRA_HEADERS, payload_hash=PAYLOAD_HASH,
           signing=SIGNING)
    def one(name: str, kind: str | None, body: bytes, extra: dict[str, str],
            payload_hash: str | None, signing: str) -> None:
        nonlocal conn
        headers = dict(extra)
        if payload_hash is not None:
            headers["X-Amz-Content-SHA256"] = payload_hash
        if kind is not None:
            headers["X-Amz-Invocation-Type"] = kind
        path = f"/2015-03-31/functions/{quote(name, safe='')}/invocations"
        try:
            status, got, answer = _send(platform, conn, path, body, headers, signing)
        except (http.client.HTTPException, OSError):
            conn.close()  # the server closed a connection (after a 413): reconnect, once
            conn = http.client.HTTPConnection("127.0.0.1", platform.port, timeout=60)
            status, got, answer = _send(platform, conn, path, body, headers, signing)
        seen[status] = seen.get(status, 0) + 1
        assert status < 500, (status, answer[:300])
        if status >= 400:
            assert got.get("x-amzn-errortype"), (status, answer[:300])
            doc = json.loads(answer)
            assert doc["Type"] == "User" and isinstance(doc["message"], str), doc
            assert " at 0x" not in doc["message"] and "/work/" not in doc["message"]
        elif status == 200:
            json.loads(answer)  # the function's answer, or its error when X-Amz-Function-Error
        else:
            assert status in (202, 204), status

    try:
        one()
    finally:
        conn.close()
    print(f"fuzzed the Invoke API: {sum(seen.values())} requests, statuses {sorted(seen.items())}")
    assert sum(seen.values()) >= 300
    assert {200, 202, 400, 403, 404} <= set(seen), seen  # 413s: test_api_security
    r = _send(platform, http.client.HTTPConnection("127.0.0.1", platform.port, timeout=60),
              "/2015-03-31/functions/fz-echo/invocations", b'{"after": "fuzz"}', {}, "platform")
    assert r[0] == 200 and json.loads(r[2])["event"] == {"after": "fuzz"}
