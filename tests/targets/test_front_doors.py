"""Both front doors: the same answers, the same errors for bad input, and a server that keeps
serving afterwards."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from targets import handler as lambda_handler
from targets.payloads import jpeg, texts

from .bad_inputs import Case, image_cases, text_cases

IMAGE_TARGETS = ("mobilenet_v2", "ssdlite_mobilenet_v2")


def _proxy_event(case_body: bytes, content_type: str | None) -> dict[str, Any]:
    headers = {"Content-Type": content_type} if content_type else {}
    return {"httpMethod": "POST", "path": "/predict", "headers": headers,
            "requestContext": {"stage": "prod"}, "isBase64Encoded": True,
            "body": base64.b64encode(case_body).decode()}


def _no_leaks(message: str) -> None:
    """Error messages tell the client what is wrong with its input, not our heap addresses or
    our file layout."""
    assert " at 0x" not in message and "site-packages" not in message, message
    assert "/work" not in message and "/tmp" not in message, message


def _invoke(target: str, event: Any, core_factory: Any) -> Any:
    lambda_handler._core = core_factory(target)  # the module's init phase, done once
    lambda_handler._init = None
    return lambda_handler.handler(event, None)


@pytest.mark.parametrize("case", image_cases(), ids=lambda c: c.name)
def test_bad_image_input_at_the_http_door(case: Case, app_factory: Any) -> None:
    app = app_factory("mobilenet_v2")
    status, body = app.post(case.body, case.content_type)
    assert status == case.status, body
    assert body["error"] == "BadInput" and case.message in str(body["message"])
    _no_leaks(str(body["message"]))
    ok, answer = app.post(jpeg(), "image/jpeg")  # and it keeps serving
    assert ok == 200 and len(answer["classes"]) == 5


@pytest.mark.parametrize("case", image_cases(), ids=lambda c: c.name)
def test_bad_image_input_at_the_lambda_door(case: Case, core_factory: Any) -> None:
    if case.name == "oversized_body":  # base64 grows it by a third: still refused
        pass
    reply = _invoke("mobilenet_v2", _proxy_event(case.body, case.content_type), core_factory)
    assert reply["statusCode"] == case.status, reply
    assert case.message in json.loads(reply["body"])["message"]
    _no_leaks(json.loads(reply["body"])["message"])
    assert "classes" in _invoke("mobilenet_v2", {"image_b64": base64.b64encode(jpeg()).decode()},
                                core_factory)


@pytest.mark.parametrize("case", text_cases(), ids=lambda c: c.name)
def test_bad_text_input_at_both_doors(case: Case, app_factory: Any, core_factory: Any) -> None:
    status, body = app_factory("text_rf").post(case.body, case.content_type)
    assert status == case.status and case.message in str(body["message"]), body
    reply = _invoke("text_rf", _proxy_event(case.body, case.content_type), core_factory)
    assert reply["statusCode"] == case.status, reply


@pytest.mark.parametrize("event, message", [
    ({"image_b64": "@@"}, "400: 'image_b64' is not valid base64"),
    ({"image_b64": base64.b64encode(b"\0" * (6 * 1024 * 1024 + 1)).decode()}, "413: "),
    ({"image": "the wrong key"}, "400: expected a JSON object with 'image_b64' or 'text'"),
    ("a bare string", "400: expected a JSON object"),
    ({"text": "an image model gets text"}, "415: target 'mobilenet_v2' takes an image"),
])
def test_direct_invoke_bad_input_is_a_lambda_error_object(event: Any, message: str,
                                                          core_factory: Any) -> None:
    with pytest.raises(lambda_handler.BadInput) as info:
        _invoke("mobilenet_v2", event, core_factory)
    assert str(info.value).startswith(message)


_B64 = base64.b64encode(jpeg()).decode()


@pytest.mark.parametrize("event, message", [
    ({"httpMethod": "POST", "headers": [1, 2], "body": _B64, "isBase64Encoded": True},
     "'headers' must be an object of strings"),
    ({"httpMethod": "POST", "headers": {"content-type": 5}, "body": "{}"},
     "'headers' must be an object of strings"),
    ({"httpMethod": "POST", "headers": {"content-type": "image/jpeg"}, "body": _B64,
      "isBase64Encoded": "yes"}, "'isBase64Encoded' must be true or false"),
    ({"httpMethod": "POST", "headers": {}, "body": {"image_b64": _B64}},
     "'body' must be a string"),
    ({"httpMethod": "POST", "headers": {}, "body": 7}, "'body' must be a string"),
    ({"httpMethod": "POST", "headers": {}, "multiValueHeaders": [1], "body": "{}"},
     "'multiValueHeaders' must be an object of lists of strings"),
    ({"httpMethod": "POST", "headers": None, "multiValueHeaders": {"content-type": "x"},
      "body": "{}"}, "'multiValueHeaders' must be an object of lists of strings"),
    ({"requestContext": {}, "body": '{"text": 1e400}'}, "out of range"),
    ({"requestContext": {}, "body": "[" * 50_000}, "nested too deeply"),
])
def test_proxy_events_of_the_wrong_shape_are_400_responses(event: dict[str, Any], message: str,
                                                           core_factory: Any) -> None:
    reply = _invoke("mobilenet_v2", event, core_factory)
    assert reply["statusCode"] == 400, reply
    assert message in json.loads(reply["body"])["message"]


def test_proxy_headers_may_be_null_and_multi_valued(core_factory: Any) -> None:
    event = {"httpMethod": "POST", "headers": None, "isBase64Encoded": True, "body": _B64,
             "multiValueHeaders": {"Content-Type": ["image/jpeg"]}}
    reply = _invoke("mobilenet_v2", event, core_factory)
    assert reply["statusCode"] == 200 and "classes" in json.loads(reply["body"])


def test_direct_invoke_bad_input_reaches_the_caller_without_a_stack_trace(
        core_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the runtime client Lambda runs (awslambdaric): the error object says what is
    wrong with the input and carries no traceback (no frames, no file paths)."""
    bootstrap = pytest.importorskip("awslambdaric.bootstrap")
    from awslambdaric.lambda_runtime_marshaller import LambdaMarshaller

    lambda_handler._core = core_factory("mobilenet_v2")
    lambda_handler._init = None
    posted: dict[str, Any] = {}

    class Client:
        marshaller = LambdaMarshaller()

        def post_invocation_error(self, invoke_id: str, error: str, xray: str,
                                  invocation_id: str | None = None) -> None:
            posted["error"] = json.loads(error)

        def post_invocation_result(self, *args: Any) -> None:
            posted["result"] = args

    bootstrap.handle_event_request(Client(), lambda_handler.handler, "req-1",
                                   b'{"image_b64": "@@"}', "application/json", None, None,
                                   "arn:aws:lambda:us-east-1:0:function:f", 0, None,
                                   bootstrap.StandardLogSink())
    error = posted["error"]
    assert error["errorType"] == "BadInput", error
    assert error["errorMessage"].startswith("400: 'image_b64' is not valid base64"), error
    assert error["stackTrace"] == [], error
    capsys.readouterr()


@pytest.mark.parametrize("target", IMAGE_TARGETS)
def test_same_answer_at_both_doors(target: str, app_factory: Any, core_factory: Any) -> None:
    image = jpeg(320, 240, seed=3)
    status, over_http = app_factory(target).post(image, "image/jpeg")
    direct = _invoke(target, {"image_b64": base64.b64encode(image).decode()}, core_factory)
    proxied = _invoke(target, _proxy_event(image, "image/jpeg"), core_factory)
    assert status == 200 and proxied["statusCode"] == 200
    via_proxy = json.loads(proxied["body"])
    for answer in (over_http, direct, via_proxy):
        answer.pop("timings_ms")
    assert over_http == direct == via_proxy


def test_answers_carry_their_timings(core_factory: Any) -> None:
    answer = _invoke("mobilenet_v2", {"image_b64": base64.b64encode(jpeg()).decode()},
                     core_factory)
    t = answer["timings_ms"]
    assert set(t) == {"decode", "inference", "postprocess", "handler"}
    assert t["inference"] > 0 and t["handler"] >= t["decode"] + t["inference"]


def test_detections_are_boxes_inside_the_image(core_factory: Any) -> None:
    from targets.core import Request

    answer = core_factory("ssdlite_mobilenet_v2").predict(Request(image=jpeg(320, 240)))
    assert 0 < len(answer["boxes"]) <= 100
    scores = [b["score"] for b in answer["boxes"]]
    assert scores == sorted(scores, reverse=True)
    for b in answer["boxes"]:
        x1, y1, x2, y2 = b["box"]
        assert 0 <= x1 <= x2 <= 320 and 0 <= y1 <= y2 <= 240 and 1 <= b["class"] <= 90


@pytest.mark.parametrize("target", ["text_rf", "albert_base"])
def test_text_targets_answer_a_label(target: str, app_factory: Any) -> None:
    status, answer = app_factory(target).post(json.dumps({"text": texts(1)[0]}).encode(),
                                              "application/json")
    assert status == 200 and 0.0 <= answer["score"] <= 1.0
    assert answer["label"] in ({"bullying", "not_bullying"} if target == "text_rf"
                               else {"negative", "positive"})


def test_light_text_model_has_learned_the_corpus(core_factory: Any) -> None:
    from targets.core import Request

    core = core_factory("text_rf")
    assert core.predict(Request(text="nobody likes you, you loser"))["label"] == "bullying"
    assert core.predict(Request(text="congrats on the new job, friend"))["label"] == \
        "not_bullying"


def test_health_reports_the_loaded_model(app_factory: Any) -> None:
    import http.client

    app = app_factory("mobilenet_v2")
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    conn.request("GET", "/health")
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 200 and body["status"] == "ok"
    assert body["parameters"] == 3_504_872 and body["runtime"] == "onnx"


@pytest.mark.parametrize("method, path, status, allow", [
    ("GET", "/predict", 405, "POST"), ("DELETE", "/health", 405, "GET, HEAD"),
    ("GET", "/nowhere", 404, None),
])
def test_other_routes_and_methods_answer_json(method: str, path: str, status: int,
                                              allow: str | None, app_factory: Any) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", app_factory("mobilenet_v2").port, timeout=10)
    conn.request(method, path)
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == status and body["status"] == status
    assert resp.getheader("allow") == allow
