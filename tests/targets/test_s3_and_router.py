"""The handler's S3 event path and the hybrid router, against moto's S3 server on loopback and
a target app on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from targets import handler as lambda_handler
from targets import s3events

boto3 = pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def store() -> Iterator[Any]:
    from pytest_servebench.backends.local.processes import new_owner
    from pytest_servebench.backends.local.storage import ObjectStore

    s = ObjectStore(owner=new_owner())
    yield s
    s.stop()


def _call(core_factory: Any, target: str, event: Any) -> Any:
    lambda_handler._core = core_factory(target)
    lambda_handler._init = None
    return lambda_handler.handler(event, None)


def _event(bucket: str, key: str) -> dict[str, Any]:
    return {"Records": [{"s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]}


def test_an_s3_event_reads_the_input_and_writes_the_answer_back(
        store: Any, core_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from targets.payloads import jpeg

    for k, v in store.environment().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(s3events, "_s3", None)
    store.put(jpeg(64, 64), "inputs", "photos/a b.jpg")
    answer = _call(core_factory, "mobilenet_v2", _event("inputs", "photos/a+b.jpg"))
    assert answer["results"] == ["s3://inputs/results/photos/a b.jpg.json"]
    written = json.loads(store.get("inputs", "results/photos/a b.jpg.json"))
    assert written["target"] == "mobilenet_v2" and len(written["classes"]) == 5


def test_bad_s3_events_are_4xx_errors(store: Any, core_factory: Any,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in store.environment().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(s3events, "_s3", None)
    with pytest.raises(lambda_handler.BadInput, match=r"^400: an S3 event record"):
        _call(core_factory, "mobilenet_v2", {"Records": [{"s3": {}}]})
    with pytest.raises(lambda_handler.BadInput, match=r"^404: no object"):
        _call(core_factory, "mobilenet_v2", _event("inputs", "missing.jpg"))
    store.put(b"not an image", "inputs", "bad.jpg")
    with pytest.raises(lambda_handler.BadInput, match=r"^415: s3://inputs/bad\.jpg"):
        _call(core_factory, "mobilenet_v2", _event("inputs", "bad.jpg"))


def test_the_router_runs_text_itself_and_forwards_images(
        core_factory: Any, app_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from targets import router
    from targets.payloads import jpeg

    server = app_factory("mobilenet_v2")
    monkeypatch.setenv("SERVEBENCH_OFFLOAD_URL", server.url + "/predict")
    lambda_handler._core = core_factory("text_rf")
    lambda_handler._init = None
    text = router.handler({"text": "you are wonderful"}, None)
    assert text["routed"] == "function" and text["target"] == "text_rf"
    import base64

    image = router.handler({"image_b64": base64.b64encode(jpeg(64, 64)).decode()}, None)
    assert image["routed"] == "server" and image["target"] == "mobilenet_v2"
    with pytest.raises(lambda_handler.BadInput, match=r"^415"):
        router.handler({"image_b64": base64.b64encode(b"not a jpeg").decode()}, None)


def test_the_router_sends_an_s3_upload_to_the_server_and_stores_the_answer(
        store: Any, core_factory: Any, app_factory: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from targets import router
    from targets.payloads import jpeg

    for k, v in store.environment().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(s3events, "_s3", None)
    monkeypatch.setenv("SERVEBENCH_OFFLOAD_URL", app_factory("mobilenet_v2").url + "/predict")
    lambda_handler._core = core_factory("text_rf")
    store.put(jpeg(64, 64), "inputs", "up.jpg")
    answer = router.handler(_event("inputs", "up.jpg"), None)
    assert answer == {"results": ["s3://inputs/results/up.jpg.json"], "routed": "server"}
    assert json.loads(store.get("inputs", "results/up.jpg.json"))["target"] == "mobilenet_v2"
    store.put(b"not an image", "inputs", "bad.jpg")
    with pytest.raises(lambda_handler.BadInput, match=r"^415: s3://inputs/bad\.jpg"):
        router.handler(_event("inputs", "bad.jpg"), None)
