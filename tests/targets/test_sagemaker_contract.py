"""SageMaker's container contract at the app: ``GET /ping`` is ``/health`` and ``POST
/invocations`` is ``/predict`` (the same answers, errors and limits). The image's ``serve``
program that binds them to port 8080 is tested in tests/backends/docker/test_image_serve.py."""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any

import pytest

from targets.app import create_app
from targets.payloads import jpeg

from .bad_inputs import Case, image_cases, text_cases

TEXT = json.dumps({"text": "you are all wonderful"}).encode()


def _ask(port: int, method: str, path: str, body: bytes | None = None,
         content_type: str | None = None) -> tuple[int, dict[str, str], dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body,
                     headers={"content-type": content_type} if content_type else {})
        resp = conn.getresponse()
        data = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, headers, json.loads(data) if data else {}
    finally:
        conn.close()


def test_ping_answers_as_health_once_loaded(app_factory: Any) -> None:
    port = app_factory("text_rf").port
    status, _, ping = _ask(port, "GET", "/ping")
    assert status == 200 and ping["status"] == "ok" and ping["target"] == "text_rf"
    _, _, health = _ask(port, "GET", "/health")
    assert ping.keys() == health.keys()
    assert _ask(port, "HEAD", "/ping")[0] == 200
    status, headers, body = _ask(port, "POST", "/ping", b"x", "text/plain")
    assert status == 405 and headers["allow"] == "GET, HEAD" and body["message"] == "GET /ping"


def test_ping_is_503_while_the_model_loads() -> None:
    """SageMaker sends no traffic to a container before ``/ping`` answers 200."""
    app = create_app("text_rf")  # its lifespan has not run: nothing is loaded
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for path in ("/ping", "/invocations"):
        sent.clear()
        method = "GET" if path == "/ping" else "POST"
        scope: dict[str, Any] = {"type": "http", "path": path, "method": method, "headers": []}
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == 503, (path, sent)


def test_invocations_answers_as_predict(app_factory: Any) -> None:
    port = app_factory("text_rf").port
    status, _, invoked = _ask(port, "POST", "/invocations", TEXT, "application/json")
    predicted = _ask(port, "POST", "/predict", TEXT, "application/json")[2]
    assert status == 200 and invoked.pop("timings_ms") and predicted.pop("timings_ms")
    assert invoked == predicted
    status, headers, body = _ask(port, "GET", "/invocations")
    assert status == 405 and headers["allow"] == "POST" and body["message"] == "POST /invocations"
    status, _, body = _ask(port, "GET", "/nowhere")
    assert status == 404 and "/invocations" in body["message"] and "/ping" in body["message"]


def test_invocations_serves_an_image_model(app_factory: Any) -> None:
    port = app_factory("mobilenet_v2").port
    status, _, body = _ask(port, "POST", "/invocations", jpeg(), "image/jpeg")
    assert status == 200 and len(body["classes"]) == 5


def _refused_alike(port: int, case: Case) -> None:
    status, _, body = _ask(port, "POST", "/invocations", case.body, case.content_type)
    assert status == case.status and 400 <= status < 500, body
    assert body["error"] == "BadInput" and case.message in str(body["message"]), body
    assert (status, body) == _ask(port, "POST", "/predict", case.body, case.content_type)[::2]


@pytest.mark.parametrize("case", text_cases(), ids=lambda c: c.name)
def test_malformed_text_at_invocations_is_the_same_4xx(case: Case, app_factory: Any) -> None:
    _refused_alike(app_factory("text_rf").port, case)


@pytest.mark.parametrize("case", [c for c in image_cases() if c.name in (
    "malformed_json", "json_not_object", "not_an_image", "empty_body", "oversized_body",
    "truncated_jpeg", "bomb_over_our_limit", "unsupported_content_type")],
    ids=lambda c: c.name)
def test_malformed_images_at_invocations_are_the_same_4xx(case: Case, app_factory: Any) -> None:
    port = app_factory("mobilenet_v2").port
    _refused_alike(port, case)
    assert _ask(port, "POST", "/invocations", jpeg(), "image/jpeg")[0] == 200  # still serving
