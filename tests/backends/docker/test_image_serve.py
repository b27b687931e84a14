"""The image's side of SageMaker's container contract: ``docker run IMAGE serve`` answers
``GET /ping`` and ``POST /invocations`` on port 8080 with no environment (the image names its
target and model). The container binds every interface of its own network namespace; the test
publishes port 8080 on 127.0.0.1 only, so nothing but loopback reaches it."""

from __future__ import annotations

import contextlib
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_servebench.backends.docker.engine import run_labels
from pytest_servebench.backends.local.processes import free_port, new_owner, release_port
from pytest_servebench.waiting import wait_for

pytestmark = pytest.mark.docker
TARGET = "text_rf"
TEXT = json.dumps({"text": "you are all wonderful"}).encode()


def _ask(port: int, method: str, path: str, body: bytes | None = None,
         content_type: str | None = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body,
                     headers={"content-type": content_type} if content_type else {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else {}
    finally:
        conn.close()


def _ping_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError:
        return False  # 503 while the model loads


@pytest.fixture(scope="module")
def image(docker_engine: Any) -> Any:
    from pytest_servebench.backends.docker.images import ensure_image

    return ensure_image(TARGET, client=docker_engine)


@contextlib.contextmanager
def _container(client: Any, tag: str, command: list[str], **kwargs: Any) -> Iterator[Any]:
    """A container of the run (labelled: the sweeper finds it if this process dies), removed
    on the way out whatever happened."""
    box = client.containers.run(tag, command, detach=True, labels=run_labels(new_owner()),
                                cpu_period=100_000, cpu_quota=100_000, mem_limit="1g",
                                **kwargs)
    try:
        yield box
    finally:
        with contextlib.suppress(Exception):
            box.remove(force=True)


def test_serve_answers_ping_and_invocations_on_8080(docker_engine: Any, image: Any) -> None:
    port = free_port()
    try:
        with _container(docker_engine, image.tag, ["serve"],
                        ports={"8080/tcp": ("127.0.0.1", port)}) as box:
            box.reload()
            published = box.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
            assert published == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]

            def exited() -> str | None:
                box.reload()
                return None if box.status in ("created", "running") else \
                    f"the container exited ({box.status})"

            wait_for(lambda: _ping_ok(port), timeout_s=120, interval_s=0.1,
                     what=f"{image.tag} serve", retry_on=(OSError,), dead=exited,
                     logs=lambda: box.logs(tail=40).decode("utf-8", "replace"))
            status, ping = _ask(port, "GET", "/ping")
            assert status == 200 and ping["target"] == TARGET
            status, answer = _ask(port, "POST", "/invocations", TEXT, "application/json")
            assert status == 200 and answer["label"], answer
            status, refused = _ask(port, "POST", "/invocations", b'{"text": ',
                                   "application/json")
            assert status == 400 and "malformed JSON" in refused["message"], refused
            status, refused = _ask(port, "POST", "/invocations", b"\xff\xfe", "text/plain")
            assert status == 400 and "UTF-8" in refused["message"], refused
            # Inside, it listens on every interface of the container (0.0.0.0:8080, state 0A).
            tcp = box.exec_run(["cat", "/proc/net/tcp"]).output.decode()
            assert any(line.split()[1:2] == ["00000000:1F90"] and line.split()[3] == "0A"
                       for line in tcp.splitlines()[1:]), tcp
    finally:
        release_port(port)


def test_serve_takes_no_arguments(docker_engine: Any, image: Any) -> None:
    with _container(docker_engine, image.tag, ["serve", "--host", "127.0.0.1"],
                    network_mode="none") as box:
        assert box.wait(timeout=60)["StatusCode"] == 2
        assert b"serve takes no arguments" in box.logs()
