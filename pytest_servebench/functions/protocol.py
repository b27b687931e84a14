"""uvicorn's HTTP protocol (httptools) with deadlines on reading a request, for the platform's
API server.

uvicorn bounds only the idle time between requests (``timeout_keep_alive``, kept long here so
load clients keep their connections) and nothing while a request arrives: a client that sends
its headers a byte a second, or opens a connection and sends nothing, holds a connection and a
file descriptor for ever (slowloris). Here a request's headers must be complete within
``header_timeout_s`` of its first byte (or of the connection's opening) and its body within
``body_timeout_s`` of the headers, or the connection is closed.

Imported only when the platform starts (it imports uvicorn).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("servebench.functions")


class DeadlineProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose request reads have deadlines; make a subclass with the
    timeouts set (``with_deadlines``) and give it to ``uvicorn.Config(http=...)``."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_body = False

    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, phase, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, phase: str, seconds: float) -> None:
        self._deadline = None
        if self.transport is not None and not self.transport.is_closing():
            log.info("closing a connection from %s: its request %s took more than %gs",
                     self.client[0] if self.client else "?", phase, seconds)
            self.transport.close()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s, "headers")  # a connection that never sends a byte

    def data_received(self, data: bytes) -> None:
        # The first bytes of a request (or stray bytes between requests, which uvicorn's parser
        # skips without a callback) start its header deadline; uvicorn's keep-alive timer
        # stops here.
        if self._deadline is None and not self._in_body:
            self._arm(self.header_timeout_s, "headers")
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_body = True
        super().on_headers_complete()
        if not self.pipeline:  # a pipelined request's body waits for the one before it
            self._arm(self.body_timeout_s, "body")

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_body = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Answered before its body was all read (a 413, a pipelined request now started): the
        # rest of the body is read and dropped, within the body deadline.
        if self._in_body and self._deadline is None and not self.transport.is_closing():
            self._arm(self.body_timeout_s, "body")


def with_deadlines(*, header_timeout_s: float, body_timeout_s: float) -> type[DeadlineProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these deadlines."""
    for name, value in (("header_timeout_s", header_timeout_s),
                        ("body_timeout_s", body_timeout_s)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, not {value!r}")
    return type("DeadlineProtocol", (DeadlineProtocol,),
                {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s})
