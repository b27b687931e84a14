"""The driver's keep-alive HTTP client, on plain blocking sockets (in a Locust worker they are
gevent's): the same replies and error kinds as the in-process engine's client."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pytest_servebench.locust_driver.client import KeepAliveClient
from pytest_servebench.target import Payload

from ..loopback import Behaviour, LoopbackServer


def test_requests_share_one_kept_alive_connection_and_carry_the_payload() -> None:
    with LoopbackServer() as srv:
        client = KeepAliveClient(srv.url, headers={"X-Run": "7"})
        replies = [client.send(Payload(b"abc%d" % i, "text/plain"), timeout_s=5)
                   for i in range(20)]
        assert all(r.ok and r.status == 200 for r in replies)
        assert client.open_connections == 1
        assert srv.bodies == [b"abc%d" % i for i in range(20)]
        client.close()
        assert client.open_connections == 0


def test_a_server_that_closes_after_each_reply_gets_a_new_connection_each_time() -> None:
    with LoopbackServer(Behaviour(close_after_reply=True)) as srv:
        client = KeepAliveClient(srv.url)
        assert all(client.send(Payload(b"x"), timeout_s=5).ok for _ in range(5))
        assert srv.requests == 5 and client.open_connections == 0


def test_http_errors_come_back_with_their_status_and_body() -> None:
    with LoopbackServer(Behaviour(status=503, body=b"overloaded")) as srv:
        reply = KeepAliveClient(srv.url).send(Payload(b"x"), timeout_s=5)
    assert not reply.ok and reply.error == "http_503" and reply.status == 503
    assert reply.detail == "overloaded"


def test_headers_and_body_are_captured_when_asked() -> None:
    with LoopbackServer(Behaviour(body=b"{}")) as srv:
        reply = KeepAliveClient(srv.url, capture_body=True, capture_headers=True).send(
            Payload(b"x"), timeout_s=5)
    assert reply.extra["body"] == b"{}"
    assert reply.extra["headers"]["content-length"] == "2"


def test_a_slow_reply_is_a_timeout_within_the_deadline() -> None:
    with LoopbackServer(Behaviour(delay_s=2.0)) as srv:
        client = KeepAliveClient(srv.url)
        t0 = time.monotonic()
        reply = client.send(Payload(b"x"), timeout_s=0.2)
        took = time.monotonic() - t0
    assert reply.error == "timeout" and 0.15 < took < 1.0
    assert client.open_connections == 0  # a connection with a reply still coming is dropped


def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    reply = KeepAliveClient(f"http://127.0.0.1:{port}/").send(Payload(b"x"), timeout_s=2)
    assert not reply.ok and reply.error == "connect"


def test_a_kept_alive_connection_the_server_dropped_is_retried_once() -> None:
    """A server that closes idle connections: the next request finds its connection dead
    before anything was read, and goes again on a new one (the server never saw it)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def serve() -> None:
        for _ in range(2):  # each connection: one reply, then closed
            conn, _ = listener.accept()
            with conn:
                seen.append(conn.recv(65536))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                time.sleep(0.1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = KeepAliveClient(f"http://127.0.0.1:{port}/p")
        assert client.send(Payload(b"1"), timeout_s=5).ok
        time.sleep(0.3)  # the server has closed the kept-alive connection
        assert client.send(Payload(b"2"), timeout_s=5).ok
        thread.join(5)
    finally:
        listener.close()
    assert len(seen) == 2 and seen[1].endswith(b"2")


def test_bad_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        KeepAliveClient("ftp://x/")
    with pytest.raises(ValueError, match="no host"):
        KeepAliveClient("http:///p")
