"""AWS Signature Version 4 for the local Lambda platform: the verifier its API checks every
request with, and the signer the load engine's ``InvokeClient`` signs with.

Standard library only (hmac, hashlib): the platform must not need botocore to check a request,
and the engine must sign in microseconds, not botocore's millisecond. The canonical request is
built exactly as botocore's ``SigV4Auth`` builds it (the path of the URL as sent, quoted once
more; the query's pairs sorted; each signed header's values trimmed and joined with commas), so a
request ``boto3.client("lambda", endpoint_url=...)`` or the AWS CLI signed verifies here.

>>> creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
>>> signer = RequestSigner(creds, method="POST", host="127.0.0.1:9000",
...                        path="/2015-03-31/functions/f/invocations")
>>> lines = signer.header_lines(payload_sha256(b"{}"), now=1_700_000_000.0)
>>> lines.splitlines()[0]
'X-Amz-Date: 20231114T221320Z'
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "lambda"
TERMINATOR = "aws4_request"
MAX_SKEW_S = 300.0  # AWS refuses a signature more than 5 minutes from its clock
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # base32, as AWS access key ids are
# Payload hashes that name no hash of the body: S3's, never sent by a Lambda client. Accepting
# them would leave the body unsigned.
_UNSIGNED_PAYLOADS = ("UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                      "STREAMING-UNSIGNED-PAYLOAD-TRAILER")


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key pair (and a session token for temporary credentials, such as the ones a
    function's sandbox gets). The secret never appears in a ``repr``."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.access_key_id or not self.secret_access_key:
            raise ValueError("credentials need an access key id and a secret access key")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Credentials | None:
        """``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), or
        None when either of the pair is unset."""
        env = os.environ if environ is None else environ
        key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            return None
        return cls(key, secret, env.get("AWS_SESSION_TOKEN") or None)

    @classmethod
    def generate(cls, *, temporary: bool = False) -> Credentials:
        """A fresh random pair, shaped like AWS's (``AKIA...`` or, with a session token,
        ``ASIA...``)."""
        key = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
        return cls(("ASIA" if temporary else "AKIA") + key, secrets.token_urlsafe(30),
                   secrets.token_urlsafe(96) if temporary else None)

    def environment(self) -> dict[str, str]:
        """The variables boto3 reads these credentials from."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id,
               "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


class SignatureError(Exception):
    """A request the platform refuses to authenticate; ``error_type`` is the
    ``x-amzn-ErrorType`` AWS answers such a request with (HTTP 403)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key_id: str
    date: str  # YYYYMMDD of the credential scope
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{TERMINATOR}"


def parse_authorization(value: str) -> Authorization:
    """Parse the header; raise ``SignatureError`` for anything but a complete SigV4 one."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError("IncompleteSignatureException",
                             f"Authorization header must use the {ALGORITHM} algorithm")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, val = item.strip().partition("=")
        if not sep:
            raise SignatureError("IncompleteSignatureException",
                                 "Authorization header parameters are name=value pairs")
        parts[name] = val
    missing = [p for p in ("Credential", "SignedHeaders", "Signature") if not parts.get(p)]
    if missing:
        raise SignatureError("IncompleteSignatureException",
                             f"Authorization header requires the {', '.join(missing)} "
                             "parameter(s)")
    scope = parts["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise SignatureError("IncompleteSignatureException",
                             "Credential is ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request")
    key, date, region, service, terminator = scope
    if terminator != TERMINATOR:
        raise SignatureError("InvalidSignatureException",
                             f"Credential should be scoped with a valid terminator: "
                             f"'{TERMINATOR}'")
    signed = tuple(parts["SignedHeaders"].split(";"))
    if any(not h or h != h.lower() for h in signed) or list(signed) != sorted(set(signed)):
        raise SignatureError("IncompleteSignatureException",
                             "SignedHeaders is the signed header names, lowercase, sorted, "
                             "separated by ';'")
    signature = parts["Signature"]
    if len(signature) != 64 or any(c not in "0123456789abcdef" for c in signature):
        raise SignatureError("IncompleteSignatureException",
                             "Signature is 64 lowercase hexadecimal digits")
    return Authorization(key, date, region, service, signed, signature)


def payload_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    k = _hmac(("AWS4" + secret_access_key).encode("utf-8"), date)
    return _hmac(_hmac(_hmac(k, region), service), TERMINATOR)


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 5.2.4, with empty segments dropped as well: botocore's remove_dot_segments.
    if not path:
        return "/"
    out: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if out:
                out.pop()
        elif seg and seg != ".":
            out.append(seg)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and out else ""
    return first + "/".join(out) + last


def canonical_uri(raw_path: str) -> str:
    """The path as it went on the wire (percent-encoded), normalised and quoted once more, as
    every service but S3 wants it."""
    return quote(_remove_dot_segments(raw_path), safe="/~")


def canonical_query(raw_query: str) -> str:
    """The query's pairs, each part percent-encoded as SigV4 wants (the form botocore already
    sends), sorted by name and then value."""
    if not raw_query:
        return ""
    pairs = []
    for item in raw_query.split("&"):
        name, _, value = item.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def _header_value(value: str) -> str:
    return " ".join(value.split())


def canonical_request(method: str, raw_path: str, raw_query: str,
                      headers: Sequence[tuple[str, str]], signed_headers: Sequence[str],
                      payload_hash: str) -> str:
    """``headers``: every header of the request, lowercase names, in the order received."""
    values: dict[str, list[str]] = {name: [] for name in signed_headers}
    for name, value in headers:
        if name in values:
            values[name].append(_header_value(value))
    lines = [f"{name}:{','.join(values[name])}" for name in signed_headers]
    return "\n".join([method.upper(), canonical_uri(raw_path), canonical_query(raw_query),
                      "\n".join(lines) + "\n", ";".join(signed_headers), payload_hash])


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope,
                      hashlib.sha256(canonical.encode("utf-8")).hexdigest()])


class Verifier:
    """Checks SigV4 signatures against a set of credentials (any region; service ``lambda``).

    ``check_headers`` does what needs no body (a known key, a fresh date, the scope, the session
    token), so an unsigned request is refused before its body is read; ``verify`` then checks
    the signature over the whole request.
    """

    def __init__(self, credentials: Iterable[Credentials], *, service: str = SERVICE,
                 max_skew_s: float = MAX_SKEW_S) -> None:
        self._credentials = {c.access_key_id: c for c in credentials}
        if not self._credentials:
            raise ValueError("a verifier needs at least one pair of credentials")
        self.service = service
        self.max_skew_s = max_skew_s
        # Derived keys change once a day per key and region: four HMACs saved per request.
        self._keys: dict[tuple[str, str, str], bytes] = {}

    def check_headers(self, headers: Mapping[str, str], *,
                      now: float | None = None) -> Authorization:
        """``headers``: lowercase names (one value each is enough here)."""
        value = headers.get("authorization")
        if not value:
            raise SignatureError("MissingAuthenticationTokenException",
                                 "Missing Authentication Token: requests to this platform "
                                 "are signed with AWS Signature Version 4")
        auth = parse_authorization(value)
        creds = self._credentials.get(auth.access_key_id)
        if creds is None:
            raise SignatureError("UnrecognizedClientException",
                                 "The security token included in the request is invalid.")
        if auth.service != self.service:
            raise SignatureError("InvalidSignatureException",
                                 f"Credential should be scoped to correct service: "
                                 f"'{self.service}'.")
        for needed in ("host", "x-amz-date"):
            if needed not in auth.signed_headers:
                raise SignatureError("IncompleteSignatureException",
                                     f"'{needed}' must be a signed header")
        amz_date = headers.get("x-amz-date", "")
        try:
            signed_at = calendar.timegm(time.strptime(amz_date, _DATE_FORMAT))
        except ValueError:
            raise SignatureError("IncompleteSignatureException",
                                 "X-Amz-Date must be a date of the form YYYYMMDDTHHMMSSZ") \
                from None
        if amz_date[:8] != auth.date:
            raise SignatureError("InvalidSignatureException",
                                 f"Date in Credential scope does not match YYYYMMDD from "
                                 f"ISO-8601 version of date from HTTP: '{auth.date}' != "
                                 f"'{amz_date[:8]}'")
        clock = time.time() if now is None else now
        if abs(clock - signed_at) > self.max_skew_s:
            when = "expired" if signed_at < clock else "not yet current"
            raise SignatureError("InvalidSignatureException",
                                 f"Signature {when}: {amz_date} is more than "
                                 f"{self.max_skew_s / 60:g} minutes from "
                                 f"{time.strftime(_DATE_FORMAT, time.gmtime(clock))}")
        if creds.session_token is not None:
            token = headers.get("x-amz-security-token", "")
            if "x-amz-security-token" not in auth.signed_headers or not hmac.compare_digest(
                    token.encode("utf-8"), creds.session_token.encode("utf-8")):
                raise SignatureError("UnrecognizedClientException",
                                     "The security token included in the request is invalid.")
        return auth

    def verify(self, auth: Authorization, *, method: str, raw_path: str, raw_query: str,
               headers: Sequence[tuple[str, str]], body: bytes) -> None:
        """Raise ``SignatureError`` unless ``auth`` (from ``check_headers``) signs this
        request. ``headers``: all of them, lowercase names, in the order received."""
        declared = next((v.strip() for n, v in headers if n == "x-amz-content-sha256"), None)
        actual = payload_sha256(body)
        if declared is not None:
            if declared in _UNSIGNED_PAYLOADS:
                raise SignatureError("InvalidSignatureException",
                                     f"X-Amz-Content-SHA256 {declared} is not accepted: this "
                                     "platform signs payloads")
            if not hmac.compare_digest(declared.encode("utf-8", "replace"), actual.encode()):
                raise SignatureError("InvalidSignatureException",
                                     "X-Amz-Content-SHA256 is not the SHA-256 of the body")
        amz_date = next((v.strip() for n, v in headers if n == "x-amz-date"), "")
        canonical = canonical_request(method, raw_path, raw_query, headers,
                                      auth.signed_headers, declared or actual)
        key = self._signing_key(auth)
        expected = hmac.new(key, string_to_sign(amz_date, auth.scope, canonical).encode("utf-8"),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
            raise SignatureError("InvalidSignatureException",
                                 "The request signature we calculated does not match the "
                                 "signature you provided. Check your AWS Secret Access Key "
                                 "and signing method.")

    def _signing_key(self, auth: Authorization) -> bytes:
        cache_key = (auth.access_key_id, auth.date, auth.region)
        key = self._keys.get(cache_key)
        if key is None:
            if len(self._keys) > 256:  # regions are free text: keep the cache bounded
                self._keys.clear()
            secret = self._credentials[auth.access_key_id].secret_access_key
            key = self._keys[cache_key] = signing_key(secret, auth.date, auth.region,
                                                      auth.service)
        return key


class RequestSigner:
    """Signs requests of one method to one URL with fixed headers, for a client that sends many
    (the load engine's ``InvokeClient``).

    X-Amz-Date has a resolution of one second, so a signature is made once per second per
    payload hash and reused within it; the signing key is made once per day. A request's cost is
    then a clock read and a dictionary look-up.
    """

    def __init__(self, credentials: Credentials, *, method: str, host: str, path: str,
                 query: str = "", headers: Mapping[str, str] | None = None,
                 region: str = "us-east-1", service: str = SERVICE) -> None:
        self.credentials = credentials
        self.region, self.service = region, service
        fixed = {k.lower(): _header_value(v) for k, v in (headers or {}).items()}
        fixed["host"] = host
        if credentials.session_token:
            fixed["x-amz-security-token"] = credentials.session_token
        self._signed = sorted([*fixed, "x-amz-date"])
        self._fixed = fixed
        self._prefix = "\n".join([method.upper(), canonical_uri(path), canonical_query(query)])
        self._date = ""
        self._key = b""
        self._second = -1
        self._amz_date = ""
        self._lines: dict[str, str] = {}
        self._token_line = (f"\r\nX-Amz-Security-Token: {credentials.session_token}"
                            if credentials.session_token else "")

    def header_lines(self, payload_hash: str, *, now: float | None = None) -> str:
        """``X-Amz-Date``, ``Authorization`` (and ``X-Amz-Security-Token``) header lines,
        CRLF-separated, for a body of this SHA-256. The same string object comes back for the
        same payload within a second (callers may cache what they build from it)."""
        second = int(time.time() if now is None else now)
        if second != self._second:
            self._second = second
            self._amz_date = time.strftime(_DATE_FORMAT, time.gmtime(second))
            self._lines = {}
            if self._amz_date[:8] != self._date:
                self._date = self._amz_date[:8]
                self._key = signing_key(self.credentials.secret_access_key, self._date,
                                        self.region, self.service)
        lines = self._lines.get(payload_hash)
        if lines is None:
            lines = self._sign(payload_hash)
            if len(self._lines) < 1024:
                self._lines[payload_hash] = lines
        return lines

    def _sign(self, payload_hash: str) -> str:
        values = {**self._fixed, "x-amz-date": self._amz_date}
        headers = "\n".join(f"{name}:{values[name]}" for name in self._signed)
        signed = ";".join(self._signed)
        canonical = "\n".join([self._prefix, headers + "\n", signed, payload_hash])
        scope = f"{self._date}/{self.region}/{self.service}/{TERMINATOR}"
        signature = hmac.new(self._key,
                             string_to_sign(self._amz_date, scope, canonical).encode("utf-8"),
                             hashlib.sha256).hexdigest()
        return (f"X-Amz-Date: {self._amz_date}\r\nAuthorization: {ALGORITHM} "
                f"Credential={self.credentials.access_key_id}/{scope}, SignedHeaders={signed}, "
                f"Signature={signature}{self._token_line}")
