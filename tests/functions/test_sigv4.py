"""SigV4 as the platform checks it and the load engine signs it, against botocore's own signer."""

from __future__ import annotations

import datetime
import time
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from pytest_servebench.functions.sigv4 import (
    Credentials,
    RequestSigner,
    SignatureError,
    Verifier,
    payload_sha256,
)

botocore = pytest.importorskip("botocore")
CREDS = Credentials("AKIAEXAMPLEEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
ROLE = Credentials.generate(temporary=True)
BASE = "http://127.0.0.1:9000"


def botocore_signed(creds: Credentials, method: str, url: str, body: bytes = b"", *,
                    headers: dict[str, str] | None = None, region: str = "us-east-1",
                    service: str = "lambda") -> list[tuple[str, str]]:
    """The request's headers as botocore signs them, lowercase, Host included (as sent)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    req = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    SigV4Auth(BotoCredentials(creds.access_key_id, creds.secret_access_key,
                              creds.session_token), service, region).add_auth(req)
    out = [(k.lower(), v) for k, v in req.headers.items()]
    return [("host", urlsplit(url).netloc), *out]


def check(verifier: Verifier, method: str, url: str, headers: list[tuple[str, str]],
          body: bytes = b"", *, now: float | None = None) -> None:
    parts = urlsplit(url)
    auth = verifier.check_headers(dict(headers), now=now)
    verifier.verify(auth, method=method, raw_path=parts.path, raw_query=parts.query,
                    headers=headers, body=body)


def invoke_url(function: str, query: str = "") -> str:
    url = f"{BASE}/2015-03-31/functions/{quote(function, safe='')}/invocations"
    return url + (f"?{query}" if query else "")


@pytest.mark.parametrize("function", [
    "echo", "with_under-score", "arn:aws:lambda:eu-west-1:000000000000:function:echo",
    "000000000000:function:echo:$LATEST", "echo:live", "name with spaces/and+plus"])
@pytest.mark.parametrize("query", ["", "Qualifier=%24LATEST", "b=2&a=1&a=0"])
def test_what_botocore_signs_verifies(function: str, query: str) -> None:
    verifier = Verifier([CREDS, ROLE])
    url = invoke_url(function, query)
    body = b'{"text": "hi", "n": [1, 2.5]}'
    check(verifier, "POST", url, botocore_signed(CREDS, "POST", url, body,
                                                 headers={"X-Amz-Invocation-Type": "Event"}),
          body)
    # Temporary credentials: the session token is signed and must match.
    check(verifier, "POST", url, botocore_signed(ROLE, "POST", url, body), body)
    # Any region (a client configured for another one still reaches the local platform).
    check(verifier, "GET", url, botocore_signed(CREDS, "GET", url, region="eu-north-1"))


def test_dot_segments_and_double_slashes_are_normalised_as_botocore_does() -> None:
    url = f"{BASE}/2015-03-31//functions/./x/../echo/invocations"
    check(Verifier([CREDS]), "POST", url, botocore_signed(CREDS, "POST", url))


def _refused(kind: str, verifier: Verifier, method: str, url: str,
             headers: list[tuple[str, str]], body: bytes = b"", **kw: Any) -> str:
    with pytest.raises(SignatureError) as info:
        check(verifier, method, url, headers, body, **kw)
    assert info.value.error_type == kind, info.value.message
    return info.value.message


def test_what_was_not_signed_by_a_known_key_is_refused() -> None:
    verifier = Verifier([CREDS, ROLE])
    url = invoke_url("echo")
    body = b"{}"
    good = botocore_signed(CREDS, "POST", url, body)
    assert "Missing Authentication Token" in _refused(
        "MissingAuthenticationTokenException", verifier, "POST", url,
        [h for h in good if h[0] != "authorization"], body)
    wrong_secret = Credentials(CREDS.access_key_id, "not the secret")
    _refused("InvalidSignatureException", verifier, "POST", url,
             botocore_signed(wrong_secret, "POST", url, body), body)
    _refused("UnrecognizedClientException", verifier, "POST", url,
             botocore_signed(Credentials("AKIASTRANGER", "x"), "POST", url, body), body)
    # The body, the path, the query and signed headers are all covered.
    _refused("InvalidSignatureException", verifier, "POST", url, good, b'{"other": 1}')
    _refused("InvalidSignatureException", verifier, "POST", invoke_url("other"), good, body)
    _refused("InvalidSignatureException", verifier, "POST", url + "?Qualifier=2", good, body)
    moved = [(k, "127.0.0.1:9001" if k == "host" else v) for k, v in good]
    _refused("InvalidSignatureException", verifier, "POST", url, moved, body)
    _refused("InvalidSignatureException", verifier, "PUT", url, good, body)
    # Another service's signature, and a token that is not the role's.
    _refused("InvalidSignatureException", verifier, "POST", url,
             botocore_signed(CREDS, "POST", url, body, service="s3"), body)
    forged = Credentials(ROLE.access_key_id, ROLE.secret_access_key, "forged-token")
    _refused("UnrecognizedClientException", verifier, "POST", url,
             botocore_signed(forged, "POST", url, body), body)


def test_a_payload_hash_header_must_be_the_bodys() -> None:
    verifier = Verifier([CREDS])
    url = invoke_url("echo")
    body = b'{"a": 1}'
    declared = botocore_signed(CREDS, "POST", url, body,
                               headers={"X-Amz-Content-SHA256": payload_sha256(body)})
    check(verifier, "POST", url, declared, body)
    _refused("InvalidSignatureException", verifier, "POST", url, declared, b'{"a": 2}')
    unsigned = botocore_signed(CREDS, "POST", url, body,
                               headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert "UNSIGNED-PAYLOAD" in _refused("InvalidSignatureException", verifier, "POST", url,
                                          unsigned, body)


def test_a_signature_is_good_for_five_minutes_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.auth

    verifier = Verifier([CREDS])
    url = invoke_url("echo")
    signed_at = datetime.datetime(2024, 2, 29, 23, 58, 0)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at)
    headers = botocore_signed(CREDS, "POST", url)
    t = signed_at.replace(tzinfo=datetime.UTC).timestamp()
    check(verifier, "POST", url, headers, now=t + 299)
    check(verifier, "POST", url, headers, now=t - 299)
    assert "expired" in _refused("InvalidSignatureException", verifier, "POST", url, headers,
                                 now=t + 301)
    assert "not yet current" in _refused("InvalidSignatureException", verifier, "POST", url,
                                         headers, now=t - 301)


@pytest.mark.parametrize("authorization", [
    "AWS4-HMAC-SHA1 Credential=AKIAEXAMPLEEXAMPLE/20240101/us-east-1/lambda/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
    "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE/20240101/us-east-1/lambda, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
    "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE/20240101/us-east-1/lambda/aws4_request, "
    "SignedHeaders=x-amz-date;host, Signature=" + "0" * 64,
    "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE/20240101/us-east-1/lambda/aws4_request, "
    "SignedHeaders=host, Signature=" + "0" * 64,
    "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE/20240101/us-east-1/lambda/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=zz",
    "AWS4-HMAC-SHA256 garbage", "AWS4-HMAC-SHA256", "Bearer abc",
])
def test_malformed_authorization_headers_are_refused(authorization: str) -> None:
    headers = {"authorization": authorization, "x-amz-date": "20240101T000000Z"}
    with pytest.raises(SignatureError) as info:
        Verifier([CREDS]).check_headers(headers, now=1704067200.0)
    assert info.value.error_type in ("IncompleteSignatureException",
                                     "InvalidSignatureException")


def test_the_engines_signer_signs_as_botocore_does(monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.auth

    now = 1_717_171_717.0
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda: datetime.datetime.fromtimestamp(now, datetime.UTC)
                        .replace(tzinfo=None))
    fixed = {"X-Amz-Invocation-Type": "RequestResponse", "X-Amz-Log-Type": "Tail"}
    for creds in (CREDS, ROLE):
        for function in ("echo", "arn:aws:lambda:us-east-1:000000000000:function:echo"):
            url = invoke_url(function)
            parts = urlsplit(url)
            signer = RequestSigner(creds, method="POST", host=parts.netloc, path=parts.path,
                                   headers=fixed)
            body = b'{"x": 1}'
            lines = signer.header_lines(payload_sha256(body), now=now)
            ours = dict(line.split(": ", 1) for line in lines.split("\r\n"))
            theirs = dict(botocore_signed(creds, "POST", url, body, headers=fixed))
            assert ours["Authorization"] == theirs["authorization"]
            assert ours["X-Amz-Date"] == theirs["x-amz-date"]
            assert ours.get("X-Amz-Security-Token") == theirs.get("x-amz-security-token")


def test_the_engines_signer_signs_once_per_second_per_payload() -> None:
    signer = RequestSigner(CREDS, method="POST", host="127.0.0.1:9000", path="/x")
    a, b = payload_sha256(b"a"), payload_sha256(b"b")
    t = time.time()
    first = signer.header_lines(a, now=t)
    assert signer.header_lines(a, now=t) is first  # the cached string: callers reuse wire bytes
    assert signer.header_lines(b, now=t) != first
    assert signer.header_lines(a, now=t + 1) != first  # a new X-Amz-Date


def test_credentials_never_show_their_secret() -> None:
    assert CREDS.secret_access_key not in repr(CREDS)
    assert ROLE.session_token is not None and ROLE.session_token not in repr(ROLE)
    assert ROLE.access_key_id.startswith("ASIA") and CREDS.access_key_id.startswith("AKIA")
    assert Credentials.from_environment({"AWS_ACCESS_KEY_ID": "k"}) is None
    env = Credentials.from_environment({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                                        "AWS_SESSION_TOKEN": "t"})
    assert env == Credentials("k", "s", "t") and env.environment()["AWS_SESSION_TOKEN"] == "t"


def test_the_modules_example_runs() -> None:
    import doctest

    from pytest_servebench.functions import sigv4

    failures, attempted = doctest.testmod(sigv4)
    assert attempted > 0 and failures == 0
