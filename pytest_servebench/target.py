"""The seam between the load engine and whatever serves requests.

A ``Target`` is something provisioned (a running server, a function); for each run the engine
asks it for a ``Client`` inside the run's event loop and sends requests through it. A target
reports what it measured on its side (cold start, init and billed duration, sandbox) in the
``Reply``, so results can split client latency from platform time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Payload:
    """One request body and its media type."""

    body: bytes
    content_type: str = "application/octet-stream"

    @classmethod
    def of(cls, value: Payload | bytes | str | Mapping[str, Any] | list[Any] | None) -> Payload:
        """Bytes as they are, text as UTF-8, mappings and lists as JSON."""
        if isinstance(value, Payload):
            return value
        if value is None:
            return cls(b"")
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls(bytes(value))
        if isinstance(value, str):
            return cls(value.encode(), "text/plain; charset=utf-8")
        if isinstance(value, (Mapping, list)):
            return cls(json.dumps(value).encode(), "application/json")
        raise TypeError(f"cannot send a {type(value).__name__} as a payload")


@dataclass(frozen=True, slots=True)
class Reply:
    """What came back for one request.

    ``error`` names the kind of failure (``"timeout"``, ``"connect"``, ``"http_503"``,
    ``"throttled"``, ``"function_error"``...) and is None on success. Platform fields are None
    when the target does not report them.
    """

    ok: bool
    error: str | None = None
    status: int | None = None
    cold_start: bool | None = None
    init_duration_s: float | None = None
    duration_s: float | None = None
    billed_duration_s: float | None = None
    max_memory_mb: float | None = None
    sandbox_id: str | None = None
    detail: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def failure(cls, error: str, detail: str | None = None, **kwargs: Any) -> Reply:
        return cls(ok=False, error=error, detail=detail, **kwargs)


@runtime_checkable
class Client(Protocol):
    """Sends requests for one run; lives inside that run's event loop."""

    async def send(self, payload: Payload, *, timeout_s: float) -> Reply:
        """Send one request and wait at most ``timeout_s`` for its reply. Never raises for a
        failed request: failures come back as ``Reply(ok=False, error=...)``."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Target(Protocol):
    """A provisioned serving target."""

    @property
    def name(self) -> str: ...

    def describe(self) -> dict[str, Any]:
        """The target's profile for results and history (kind, memory size, instance type...)."""
        ...

    def client(self, *, concurrency_hint: int) -> Client:
        """A client for one run; called inside the run's event loop."""
        ...
