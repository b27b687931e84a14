"""Fixtures for the targets: built artifacts in a per-session cache, a core per target, and the
HTTP app under a real uvicorn on a loopback port (in a thread: the local backend's process
management is tested with the backend)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="the targets need the [targets] extra")


@pytest.fixture(scope="session")
def core_factory() -> Iterator[object]:
    from targets.core import load_core

    cores: dict[str, object] = {}

    def get(name: str) -> object:
        if name not in cores:
            cores[name] = load_core(name)
        return cores[name]

    yield get


class AppServer:
    def __init__(self, target: str) -> None:
        import uvicorn

        from targets.app import create_app

        config = uvicorn.Config(create_app(target), host="127.0.0.1", port=0,
                                log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the {target} app did not start in 60 s")
            time.sleep(0.02)
        sock = self.server.servers[0].sockets[0]
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def post(self, body: bytes, content_type: str | None) -> tuple[int, dict[str, object]]:
        import http.client
        import json

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"content-type": content_type} if content_type else {}
        conn.request("POST", "/predict", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, json.loads(data) if data else {}

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def app_factory() -> Iterator[object]:
    servers: dict[str, AppServer] = {}

    def get(name: str) -> AppServer:
        if name not in servers:
            servers[name] = AppServer(name)
        return servers[name]

    yield get
    for s in servers.values():
        s.stop()


@pytest.fixture
def scratch_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SERVEBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    os.environ.setdefault("SERVEBENCH_THREADS", "2")
