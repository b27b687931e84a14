"""The platform's API refuses what AWS would refuse, and what a local platform running code as
its own user must (issue #15): unsigned or wrongly signed requests, foreign Host headers,
non-loopback binds, environments Lambda would not take (and PYTHONPATH and friends through the
API), oversized or pathological bodies, slow clients; a client that goes away costs no
traceback."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from pytest_servebench.functions.sigv4 import Credentials

from .conftest import config, signed_headers

FN = "sec-echo"
SLOW = "sec-sleep"


@pytest.fixture(scope="module")
def quick(platform: Any) -> Iterator[Any]:
    """A second platform with two-second read deadlines (the default ones are 10 s and 30 s)."""
    from pytest_servebench.backends.local.functions import ProcessLauncher
    from pytest_servebench.functions.api import PlatformServer

    with PlatformServer(lambda: ProcessLauncher(owner=platform.owner, shaper=platform.shaper),
                        header_timeout_s=2, body_timeout_s=2) as srv:
        yield srv


@pytest.fixture(scope="module")
def functions(platform: Any) -> Any:
    platform.deploy(config(FN, memory_mb=128))
    platform.deploy(config(SLOW, "sleep", memory_mb=128))
    return platform


def _path(function: str, op: str = "invocations") -> str:
    return f"/2015-03-31/functions/{quote(function, safe='')}/{op}"


def request(srv: Any, method: str, path: str, body: bytes = b"", *,
            headers: dict[str, str] | None = None, sign: Credentials | bool | None = True,
            host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request over http.client, signed by botocore's signer unless ``sign`` is False."""
    netloc = host or f"127.0.0.1:{srv.port}"
    all_headers = dict(headers or {})
    if sign is not False:
        creds = srv.credentials if sign is True else sign
        all_headers = signed_headers(creds, method, f"http://{netloc}{path}", body,
                                     headers=all_headers)
    all_headers["Host"] = netloc
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def assert_lambda_error(status: int, headers: dict[str, str], body: bytes, code: int,
                        kind: str) -> str:
    """Lambda's error shape; the message, checked for what must never leak."""
    assert (status, headers.get("x-amzn-errortype")) == (code, kind), body[:300]
    doc = json.loads(body)
    assert doc["Type"] == "User" and isinstance(doc["message"], str)
    assert " at 0x" not in doc["message"] and "/work/" not in doc["message"]
    assert "/tmp/" not in doc["message"] and "Traceback" not in doc["message"]
    return str(doc["message"])


# -- 1. authentication ---------------------------------------------------------------------
def test_boto3_signed_calls_work_with_arns_qualifiers_and_every_operation(
        functions: Any, lam: Any) -> None:
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{FN}"
    for name in (FN, arn, f"000000000000:function:{FN}", f"{FN}:$LATEST"):
        r = lam.invoke(FunctionName=name, Payload=json.dumps({"name": name}))
        assert r["StatusCode"] == 200 and json.loads(r["Payload"].read())["event"] == {
            "name": name}
    r = lam.invoke(FunctionName=FN, Qualifier="$LATEST", Payload=b"{}")
    assert r["StatusCode"] == 200
    assert lam.get_function_configuration(FunctionName=arn)["FunctionName"] == FN
    assert lam.put_function_concurrency(FunctionName=arn, ReservedConcurrentExecutions=5)[
        "ReservedConcurrentExecutions"] == 5


def test_unsigned_and_wrongly_signed_requests_get_403_in_lambdas_shape(
        functions: Any, lam: Any) -> None:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    status, headers, body = request(functions, "POST", _path(FN), b"{}", sign=False)
    assert_lambda_error(status, headers, body, 403, "MissingAuthenticationTokenException")
    unsigned = boto3.client("lambda", endpoint_url=functions.endpoint_url,
                            region_name="us-east-1",
                            config=Config(signature_version=UNSIGNED,
                                          retries={"max_attempts": 0}))
    with pytest.raises(unsigned.exceptions.ClientError) as info:
        unsigned.invoke(FunctionName=FN, Payload=b"{}")
    assert info.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    wrong = Credentials(functions.credentials.access_key_id, "not-the-secret")
    status, headers, body = request(functions, "POST", _path(FN), b"{}", sign=wrong)
    assert "signature" in assert_lambda_error(status, headers, body, 403,
                                              "InvalidSignatureException")
    stranger = Credentials("AKIASTRANGERSTRANGE", "whatever")
    status, headers, body = request(functions, "GET", _path(FN, "configuration"), sign=stranger)
    assert_lambda_error(status, headers, body, 403, "UnrecognizedClientException")
    # Every route is behind the signature, unknown ones included.
    status, headers, body = request(functions, "GET", "/2015-03-31/functions", sign=False)
    assert_lambda_error(status, headers, body, 403, "MissingAuthenticationTokenException")


def test_a_stale_signature_is_refused(functions: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime

    import botocore.auth

    then = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) \
        - datetime.timedelta(minutes=6)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: then)
    status, headers, body = request(functions, "POST", _path(FN), b"{}")
    assert "expired" in assert_lambda_error(status, headers, body, 403,
                                            "InvalidSignatureException")


def test_sandboxes_sign_with_role_credentials_of_their_own(functions: Any) -> None:
    role = functions.platform.role_credentials
    assert role.session_token and role.access_key_id != functions.credentials.access_key_id
    assert request(functions, "POST", _path(FN), b"{}", sign=role)[0] == 200
    no_token = Credentials(role.access_key_id, role.secret_access_key)
    status, headers, body = request(functions, "POST", _path(FN), b"{}", sign=no_token)
    assert_lambda_error(status, headers, body, 403, "UnrecognizedClientException")


def test_the_engines_client_signs_and_an_unsigned_one_is_refused(functions: Any) -> None:
    import asyncio

    from pytest_servebench.functions.client import FunctionTarget, InvokeClient
    from pytest_servebench.target import Payload

    async def send(make: Any) -> Any:
        client = make()  # in the loop it serves
        try:
            return [await client.send(Payload(json.dumps({"i": i}).encode(),
                                              "application/json"), timeout_s=30)
                    for i in range(3)]
        finally:
            await client.aclose()

    target = FunctionTarget(functions.endpoint_url, FN, credentials=functions.credentials)
    replies = asyncio.run(send(lambda: target.client(concurrency_hint=1)))
    assert all(r.ok for r in replies), replies
    assert functions.credentials.secret_access_key not in repr(target)
    refused = asyncio.run(send(lambda: InvokeClient(functions.endpoint_url, FN)))
    assert {r.status for r in refused} == {403}


# -- 2. Host header ------------------------------------------------------------------------
def test_a_foreign_host_header_is_refused(functions: Any) -> None:
    port = functions.port
    status, headers, body = request(functions, "POST", _path(FN), b"{}",
                                    host=f"rebound.example:{port}")
    message = assert_lambda_error(status, headers, body, 421, "MisdirectedRequestException")
    assert "rebound.example" in message and "loopback" in message
    for host in (f"localhost:{port}", f"127.0.0.2:{port}", "127.0.0.1"):
        assert request(functions, "POST", _path(FN), b"{}", host=host)[0] == 200, host


def test_host_names_are_never_resolved_and_wildcard_binds_take_address_literals() -> None:
    from pytest_servebench.functions.api import HostCheck, is_loopback

    local = HostCheck(["127.0.0.1"])
    assert local.allows("127.0.0.1:9000") and local.allows("[::1]:9000")
    assert local.allows("LOCALHOST") and not local.allows("localhost.evil.example")
    assert not local.allows("10.0.0.1:9000") and not local.allows(None)
    wildcard = HostCheck(["0.0.0.0"], extra=["lambda.internal"])
    assert wildcard.allows("10.0.0.1:9000") and wildcard.allows("lambda.internal:9000")
    assert not wildcard.allows("evil.example:9000")
    assert is_loopback("localhost") and is_loopback("127.0.0.5") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


# -- 3. binds ------------------------------------------------------------------------------
def test_non_loopback_binds_need_allow_remote_and_chosen_credentials() -> None:
    from pytest_servebench.functions.api import PlatformServer

    def factory() -> Any:
        raise AssertionError("never started")

    with pytest.raises(ValueError, match="loopback only"):
        PlatformServer(factory, host="0.0.0.0")
    with pytest.raises(ValueError, match="credentials"):
        PlatformServer(factory, host="0.0.0.0", allow_remote=True)
    srv = PlatformServer(factory, host="0.0.0.0", allow_remote=True,
                         credentials=Credentials("AKIAMINE", "secret"))
    srv.stop()
    with pytest.raises(ValueError, match="header_timeout_s"):
        PlatformServer(factory, header_timeout_s=0)


# -- 4. environment ------------------------------------------------------------------------
def _put_environment(srv: Any, variables: Any) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"Environment": {"Variables": variables}}).encode()
    return request(srv, "PUT", _path(FN, "configuration"), body)


def _env(**more: Any) -> dict[str, Any]:
    return {**config(FN).environment, **more}  # keeps PYTHONPATH: the handler's module


def test_non_string_values_are_a_400_and_the_function_keeps_working(functions: Any) -> None:
    for bad in ({"COUNT": 1}, {"FLAG": True}, {"LIST": ["a"]}, {"NULL": None}, ["A=1"]):
        variables = _env(**bad) if isinstance(bad, dict) else bad
        status, headers, body = _put_environment(functions, variables)
        assert_lambda_error(status, headers, body, 400, "InvalidParameterValueException")
    status, headers, body = request(functions, "POST", _path(FN), b'{"still": "here"}')
    assert status == 200 and "x-amz-function-error" not in headers, body
    assert json.loads(body)["event"] == {"still": "here"}


@pytest.mark.parametrize(("variables", "says"), [
    ({"1ABC": "x"}, "does not match"), ({"A-B": "x"}, "does not match"),
    ({"A": "x"}, "does not match"),  # a single character: the pattern wants two
    ({"AWS_REGION": "eu-west-1"}, "reserved keys"),
    ({"AWS_ACCESS_KEY_ID": "AKIAX"}, "reserved keys"), ({"_HANDLER": "x.y"}, "reserved keys"),
    ({"BIG": "x" * 4100}, "4KB"),
])
def test_environments_lambda_refuses_are_refused(functions: Any, variables: dict[str, str],
                                                 says: str) -> None:
    status, headers, body = _put_environment(functions, _env(**variables))
    assert says in assert_lambda_error(status, headers, body, 400,
                                       "InvalidParameterValueException")


def test_pythonpath_and_preloads_cannot_be_set_through_the_api(functions: Any, lam: Any,
                                                               tmp_path: Path) -> None:
    """The reported exploit: a folder with a sitecustomize.py on PYTHONPATH ran its code as
    the platform's user in every new sandbox."""
    marker = tmp_path / "ran"
    (tmp_path / "sitecustomize.py").write_text(
        f"open({str(marker)!r}, 'w').write('pwned')\n")
    for key, value in (("PYTHONPATH", str(tmp_path)), ("PYTHONSTARTUP", "/x.py"),
                       ("PYTHONHOME", str(tmp_path)), ("LD_PRELOAD", "/x.so"),
                       ("LD_LIBRARY_PATH", str(tmp_path)), ("PYTHONUSERBASE", str(tmp_path))):
        status, headers, body = _put_environment(functions, {**_env(), key: value})
        message = assert_lambda_error(status, headers, body, 400,
                                      "InvalidParameterValueException")
        assert key in message and "sandboxes run as" in message
    functions.force_cold(FN)
    assert request(functions, "POST", _path(FN), b"{}")[0] == 200
    assert not marker.exists()
    # Written back as read (the value the function was deployed with) is no change: allowed.
    current = lam.get_function_configuration(FunctionName=FN)["Environment"]["Variables"]
    updated = lam.update_function_configuration(
        FunctionName=FN, Environment={"Variables": {**current, "GREETING": "hi"}})
    assert updated["Environment"]["Variables"]["GREETING"] == "hi"
    assert request(functions, "POST", _path(FN), b"{}")[0] == 200


def test_function_configs_are_checked_as_lambda_checks_them() -> None:
    from pytest_servebench.functions.platform import FunctionConfig

    with pytest.raises(ValueError, match="must be a string"):
        FunctionConfig("f", environment={"COUNT": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="reserved keys"):
        FunctionConfig("f", environment={"AWS_SESSION_TOKEN": "x"})
    with pytest.raises(ValueError, match="4KB"):
        FunctionConfig("f", environment={f"K{i}": "v" * 100 for i in range(50)})
    # The Python API may set PYTHONPATH: whoever calls it already runs code here.
    assert FunctionConfig("f", environment={"PYTHONPATH": "/opt"}).environment


def test_other_configuration_values_must_be_integers(functions: Any) -> None:
    for doc in ({"MemorySize": "512"}, {"MemorySize": 512.5}, {"Timeout": True}):
        status, headers, body = request(functions, "PUT", _path(FN, "configuration"),
                                        json.dumps(doc).encode())
        assert_lambda_error(status, headers, body, 400, "InvalidParameterValueException")
    status, headers, body = request(functions, "PUT", "/2017-10-31/functions/sec-echo/concurrency",
                                    b"[1]")
    assert_lambda_error(status, headers, body, 400, "InvalidRequestContentException")


# -- 5. bodies -----------------------------------------------------------------------------
def _signed_head(srv: Any, path: str, more: dict[str, str]) -> bytes:
    """Request line and headers, signed (for the headers' checks: no body goes with them)."""
    netloc = f"127.0.0.1:{srv.port}"
    headers = signed_headers(srv.credentials, "POST", f"http://{netloc}{path}", b"")
    headers.update(more)
    lines = [f"POST {path} HTTP/1.1", f"Host: {netloc}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_status(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head + rest


@pytest.mark.parametrize(("kind", "size"), [("RequestResponse", 64 * 2**20),
                                            ("Event", 256 * 1024 + 1)])
def test_an_oversized_body_is_refused_before_it_is_sent(functions: Any, kind: str,
                                                        size: int) -> None:
    with socket.create_connection(("127.0.0.1", functions.port), timeout=30) as sock:
        sock.sendall(_signed_head(functions, _path(FN), {
            "Content-Length": str(size), "X-Amz-Invocation-Type": kind}))
        status, raw = _read_status(sock)  # not one byte of the body sent
    assert status == 413 and b"RequestTooLargeException" in raw


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(functions: Any) -> None:
    block = b"x" * 2**20
    with socket.create_connection(("127.0.0.1", functions.port), timeout=30) as sock:
        sock.sendall(_signed_head(functions, _path(FN), {"Transfer-Encoding": "chunked"}))
        for _ in range(7):  # 7 MB of a body that would go on for ever
            sock.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
        status, raw = _read_status(sock)
    assert status == 413 and b"RequestTooLargeException" in raw
    assert request(functions, "POST", _path(FN), b"{}")[0] == 200


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1"
                                  + b"}" * 50_000, b"1e400", b'{"x": -1e999}', b"NaN",
                                  b'{"x": Infinity}', b"\xff\xfe{", b"{", b"9" * 5000])
def test_pathological_json_is_a_400_with_a_message(functions: Any, body: bytes) -> None:
    status, headers, answer = request(functions, "POST", _path(FN), body)
    message = assert_lambda_error(status, headers, answer, 400,
                                  "InvalidRequestContentException")
    assert message.startswith("Could not parse request body into json: ")


# -- 6. slow clients -----------------------------------------------------------------------
def _seconds_until_closed(sock: socket.socket, dribble: bytes, limit_s: float) -> float:
    """Send ``dribble`` a byte a second; the seconds until the server closed the connection
    (``limit_s`` bounds the wait: the test fails if it is still open then)."""
    started = time.monotonic()
    sock.settimeout(1.0)
    for i in range(len(dribble)):
        if time.monotonic() - started > limit_s:
            break
        try:
            sock.sendall(dribble[i:i + 1])
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue  # still open: a second passed
        except OSError:  # reset by the server
            return time.monotonic() - started
    raise AssertionError(f"the connection was still open after {limit_s:g}s")


def test_headers_sent_a_byte_a_second_are_cut_off_at_the_default_deadline(
        functions: Any) -> None:
    head = _signed_head(functions, _path(FN), {"Content-Length": "2"})
    with socket.create_connection(("127.0.0.1", functions.port), timeout=30) as sock:
        took = _seconds_until_closed(sock, head, limit_s=functions.header_timeout_s + 10)
    assert functions.header_timeout_s == 10.0 and functions.body_timeout_s == 30.0
    assert took >= functions.header_timeout_s - 1, took  # the deadline, not something else
    assert request(functions, "POST", _path(FN), b"{}")[0] == 200


def test_silent_connections_and_slow_bodies_are_cut_off_at_configured_deadlines(
        quick: Any) -> None:
    with socket.create_connection(("127.0.0.1", quick.port), timeout=30) as sock:
        sock.settimeout(quick.header_timeout_s + 10)
        assert sock.recv(1) == b""  # a connection that says nothing
    head = _signed_head(quick, _path(FN), {"Content-Length": "100"})
    with socket.create_connection(("127.0.0.1", quick.port), timeout=30) as sock:
        sock.sendall(head)
        _seconds_until_closed(sock, b" " * 100, limit_s=quick.body_timeout_s + 10)
    # Idle keep-alive connections between requests are not cut (load clients keep theirs).
    conn = http.client.HTTPConnection("127.0.0.1", quick.port, timeout=30)
    try:
        for _ in range(2):
            conn.request("GET", "/nothing", headers=signed_headers(
                quick.credentials, "GET", f"http://127.0.0.1:{quick.port}/nothing"))
            assert conn.getresponse().read() and conn.sock is not None
            time.sleep(quick.header_timeout_s + 0.5)
    finally:
        conn.close()


# -- 7. clients that go away ---------------------------------------------------------------
class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_client_that_goes_away_mid_invoke_logs_no_traceback(functions: Any) -> None:
    records = _Records()
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.error", "asyncio",
                                              "servebench.functions")]
    for logger in loggers:
        logger.addHandler(records)
    try:
        body = json.dumps({"seconds": 0.5}).encode()
        mid_invoke = _signed_head(functions, _path(SLOW), {"Content-Length": str(len(body))})
        mid_body = _signed_head(functions, _path(SLOW), {"Content-Length": "1000"})
        for wire in (mid_invoke + body, mid_body + b'{"seconds"'):
            with socket.create_connection(("127.0.0.1", functions.port), timeout=30) as sock:
                sock.sendall(wire)
                time.sleep(0.2)
        time.sleep(1.0)  # the invocation ends, its answer has nobody to go to
        assert request(functions, "POST", _path(SLOW), body)[0] == 200
    finally:
        for logger in loggers:
            logger.removeHandler(records)
    noisy = [r for r in records.records if r.exc_info or r.levelno >= logging.ERROR]
    assert noisy == [], [r.getMessage() for r in noisy]
