"""The load engine's side of a function: Lambda's Invoke API over keep-alive HTTP.

Each request asks for the log tail (``X-Amz-Log-Type: Tail``) and reads the REPORT line from it:
cold or warm, init duration, duration, billed duration, max memory used. The same wire protocol
is what ``boto3.client("lambda").invoke`` speaks; the engine uses its own lean client because a
load generator's per-request cost is the floor of what it can measure (boto3 spends about a
millisecond of CPU per call on a 2-core machine; see benchmarks/bench_functions.py). It signs
each request with SigV4 as boto3 would, at the cost of a clock read and a look-up per request:
a signature is made once per second per event (``sigv4.RequestSigner``).
"""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlsplit

from ..http_client import HttpClient
from ..records import Recording
from ..target import Client, Payload, Reply
from .report import InvocationReport, ReportParseError, ReportSource, decode_tail, find_report
from .sigv4 import Credentials, RequestSigner, payload_sha256

_MAX_DETAIL = 512


def event_for(payload: Payload) -> Payload:
    """The Lambda event for a payload: JSON goes as it is (a direct invoke); anything else goes
    in an API Gateway proxy event, base64-encoded, as an HTTP API would deliver it."""
    if payload.content_type.startswith("application/json"):
        return Payload(payload.body or b"{}", "application/json")
    event = {"version": "2.0", "routeKey": "POST /predict", "rawPath": "/predict",
             "headers": {"content-type": payload.content_type},
             "requestContext": {"http": {"method": "POST", "path": "/predict"}},
             "body": base64.b64encode(payload.body).decode("ascii"), "isBase64Encoded": True}
    return Payload(json.dumps(event).encode(), "application/json")


REPORT_MISSING = "report_missing"  # Reply.extra: the request id whose REPORT the tail lacked


def report_fields(report: InvocationReport) -> dict[str, Any]:
    """A ``Reply``'s platform fields from a REPORT line."""
    return {"cold_start": report.cold_start,
            "init_duration_s": None if report.init_duration_ms is None
            else report.init_duration_ms / 1000,
            "duration_s": report.duration_ms / 1000,
            "billed_duration_s": report.billed_duration_ms / 1000,
            "max_memory_mb": float(report.max_memory_used_mb)}


def reply_from_invoke(reply: Reply, *, proxied: bool) -> Reply:
    """Turn an Invoke API response into a ``Reply`` with the platform's measurements."""
    headers: dict[str, str] = reply.extra.get("headers", {})
    body: bytes = reply.extra.get("body", b"")
    if not reply.ok:
        if reply.status == 429:
            return Reply.failure("throttled", reply.detail, status=429)
        return Reply(ok=False, error=reply.error, status=reply.status, detail=reply.detail)
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    tail = headers.get("x-amz-log-result")
    report = None
    if tail:
        try:
            report = find_report(decode_tail(tail))
        except (ReportParseError, ValueError) as exc:
            return Reply.failure("bad_report", str(exc), status=reply.status)
    if report is not None:
        fields = report_fields(report)
    else:  # no tail, or one cut before its REPORT line: the logs have it (``complete``)
        extra[REPORT_MISSING] = headers.get("x-amzn-requestid") or ""
    phases = headers.get("x-servebench-init-phases")
    if phases:
        with contextlib.suppress(ValueError):
            extra["init_phases"] = json.loads(phases)
    sandbox = headers.get("x-servebench-sandbox-id")
    if headers.get("x-amz-function-error"):
        return Reply(ok=False, error="function_error", status=reply.status,
                     detail=body[:_MAX_DETAIL].decode("utf-8", "replace"), sandbox_id=sandbox,
                     extra=extra, **fields)
    if proxied and body.startswith(b'{"statusCode": '):
        try:
            code = int(json.loads(body)["statusCode"])
        except (ValueError, KeyError, TypeError):
            code = 200
        if code >= 400:
            return Reply(ok=False, error=f"http_{code}", status=code,
                         detail=body[:_MAX_DETAIL].decode("utf-8", "replace"),
                         sandbox_id=sandbox, extra=extra, **fields)
    return Reply(ok=True, status=reply.status, sandbox_id=sandbox, extra=extra, **fields)


def invoke_route(endpoint_url: str, function: str, *, credentials: Credentials | None = None,
                 region: str = "us-east-1") -> tuple[str, dict[str, str], RequestSigner | None]:
    """The Invoke API's URL, fixed headers and signer (None without credentials) for one
    function: what ``InvokeClient`` sends, for a client on another event loop (the Locust
    driver's gevent workers)."""
    quoted = quote(function, safe="")
    url = f"{endpoint_url.rstrip('/')}/2015-03-31/functions/{quoted}/invocations"
    headers = {"X-Amz-Invocation-Type": "RequestResponse", "X-Amz-Log-Type": "Tail"}
    signer = None
    if credentials is not None:
        parts = urlsplit(url)
        signer = RequestSigner(credentials, method="POST", region=region,
                               host=parts.netloc.rsplit("@", 1)[-1], path=parts.path,
                               query=parts.query, headers=headers)
    return url, headers, signer


class InvokeClient:
    """Invokes one function for one run (lives in the run's event loop); requests are signed
    with ``credentials`` when given."""

    def __init__(self, endpoint_url: str, function: str, *,
                 credentials: Credentials | None = None, region: str = "us-east-1") -> None:
        url, headers, self._signer = invoke_route(endpoint_url, function,
                                                  credentials=credentials, region=region)
        self._http = HttpClient(url, headers=headers, capture_body=True, capture_headers=True,
                                sign=self._sign if self._signer is not None else None)
        self._events: dict[Payload, tuple[Payload, bool]] = {}
        self._hashes: dict[Payload, str] = {}

    def _sign(self, event: Payload) -> str:
        assert self._signer is not None
        digest = self._hashes.get(event)
        if digest is None:
            digest = payload_sha256(event.body)
            if len(self._hashes) < 1024:
                self._hashes[event] = digest
        return self._signer.header_lines(digest)

    async def send(self, payload: Payload, *, timeout_s: float) -> Reply:
        hit = self._events.get(payload)
        if hit is None:
            hit = (event_for(payload), not payload.content_type.startswith("application/json"))
            if len(self._events) < 1024:
                self._events[payload] = hit
        event, proxied = hit
        reply = await self._http.send(event, timeout_s=timeout_s)
        return reply_from_invoke(reply, proxied=proxied)

    async def aclose(self) -> None:
        await self._http.aclose()


@dataclass(frozen=True)
class FunctionTarget:
    """A function behind Lambda's Invoke API (the local platform, or AWS in a later backend).

    ``profile`` feeds cost and history: ``platform``, ``memory_mb``, ``arch``, and what the
    backend did to shape it.
    """

    endpoint_url: str
    function: str
    name: str = "lambda"
    profile: dict[str, Any] = field(default_factory=dict)
    credentials: Credentials | None = field(default=None, repr=False, compare=False)
    region: str = "us-east-1"  # the signature's scope
    # Where REPORT lines are found when a reply's log tail lacks one (CloudWatch Logs on AWS).
    reports: ReportSource | None = field(default=None, repr=False, compare=False)

    def complete(self, recording: Recording) -> Recording:
        """Fill in the platform's measurements of replies whose log tail had no REPORT line
        (no tail, or one cut before it) from ``reports``; replies still without one keep
        their ``report_missing`` mark, and the result counts them."""
        missing = {r.reply.extra[REPORT_MISSING]: i for i, r in enumerate(recording.records)
                   if r.reply.extra.get(REPORT_MISSING)}
        if self.reports is None or not missing:
            return recording
        found = self.reports.reports(self.function.partition(":")[0], set(missing),
                                     since_unix_s=recording.started_unix_s)
        records = list(recording.records)
        for request_id, report in found.items():
            i = missing.get(request_id)
            if i is None:
                continue
            reply = records[i].reply
            extra = {k: v for k, v in reply.extra.items() if k != REPORT_MISSING}
            extra["report_from"] = "logs"
            records[i] = replace(records[i], reply=replace(reply, **report_fields(report),
                                                           extra=extra))
        return replace(recording, records=tuple(records))

    def describe(self) -> dict[str, Any]:
        return {"kind": "function", "platform": "lambda", "function": self.function,
                "endpoint_url": self.endpoint_url, **self.profile}

    def client(self, *, concurrency_hint: int) -> Client:
        return InvokeClient(self.endpoint_url, self.function, credentials=self.credentials,
                            region=self.region)
