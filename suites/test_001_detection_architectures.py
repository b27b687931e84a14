"""Study 001: object detection served without and with a server, light and heavy models
(``shared/seeds/001_1523139501f6ea4c.txt``).

Cases: a light detector (SSDlite-MobileNetV2) and a heavy one (SSD-ResNet-50) as functions, the
image sent in the request body (architecture 5) or through object storage (S3 notification
event; the function reads the image from S3 and writes its result back: moto's S3 server on
loopback is a real S3 API); cold and warm billed time and memory per model; a model over the
memory limit fails with a clear error, not a hang; the break-even calls per day between a
server and the function, from the measured numbers.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from pytest_servebench import ClosedLoop
from pytest_servebench.cost import breakeven_calls_per_day
from pytest_servebench.target import Payload

STUDY = "001"
MODELS = ["ssdlite_mobilenet_v2", "ssd_resnet50"]
BUCKET = "servebench-s001"

pytestmark = pytest.mark.study_target("lambda")


@pytest.fixture(scope="module")
def detector(servebench_backend: Any) -> Any:
    fns: dict[str, Any] = {}

    def get(model: str) -> Any:
        if model not in fns:
            store = servebench_backend.object_store
            fns[model] = servebench_backend.function(
                model, memory_mb=2048, name=f"s001-{model}", timeout_s=60,
                environment=store.environment())
        return fns[model]

    return get


@pytest.fixture(scope="module")
def photo() -> bytes:
    from targets.payloads import jpeg

    return jpeg(640, 480, seed=1)


def _s3_event(key: str) -> Payload:
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}}]}
    return Payload(json.dumps(event).encode(), "application/json")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("path", ["body", "s3"])
def test_warm_inference_by_architecture(servebench: Any, servebench_backend: Any,
                                        detector: Any, findings: Any, slo: dict[str, Any],
                                        photo: bytes, path: str, model: str) -> None:
    fn = detector(model)
    if path == "s3":
        key = f"inputs/{model}.jpg"
        servebench_backend.object_store.put(photo, BUCKET, key)
        payload: Any = _s3_event(key)
    else:
        payload = photo
    result = servebench.run(ClosedLoop(concurrency=1, requests=40, warmup_requests=1),
                            payload=payload, target=fn)
    result.check(f"success_ratio >= {slo['success_ratio_min']}",
                 f"{slo['tail']} < {slo['warm_tail_max']}")
    findings.results[STUDY][(model, path)] = result
    if path == "s3":  # the answer went back through S3
        answer = json.loads(servebench_backend.object_store.get(BUCKET, f"results/{key}.json"))
        assert answer["target"] == model and isinstance(answer["boxes"], list)


@pytest.mark.parametrize("model", MODELS)
def test_cold_and_warm_billing(servebench: Any, servebench_backend: Any, detector: Any,
                               findings: Any, slo: dict[str, Any], photo: bytes,
                               model: str) -> None:
    fn = detector(model)
    servebench_backend.force_cold(fn)
    cold = servebench.run(ClosedLoop(concurrency=1, requests=1), payload=photo, target=fn)
    cold.check("success_ratio >= 1", f"max < {slo['cold_start_max']}")
    warm = servebench.run(ClosedLoop(concurrency=1, requests=10), payload=photo, target=fn)
    c, w = cold.records[0].reply, [r.reply for r in warm.records]
    assert c.cold_start and all(r.cold_start is False for r in w)
    findings.values[STUDY][("billed", model)] = (c.billed_duration_s,
                                                 max(r.billed_duration_s or 0 for r in w))
    findings.values[STUDY][("memory", model)] = max(r.max_memory_mb or 0 for r in w)
    # Billed time counts the init phase on a cold start (AWS's rule since August 2025).
    assert c.billed_duration_s is not None and c.init_duration_s is not None
    assert c.billed_duration_s >= c.init_duration_s + (c.duration_s or 0) - 0.001


def test_finding_the_heavy_model_costs_more_time_and_memory(findings: Any) -> None:
    got = findings.values.get(STUDY, {})
    needed = [("billed", m) for m in MODELS] + [("memory", m) for m in MODELS]
    if any(k not in got for k in needed):
        pytest.skip("needs the cold/warm billing of both models in this run")
    (light_cold, light_warm), (heavy_cold, heavy_warm) = (got[("billed", m)] for m in MODELS)
    assert heavy_warm > light_warm and heavy_cold > light_cold
    assert got[("memory", "ssd_resnet50")] > got[("memory", "ssdlite_mobilenet_v2")]


def test_a_model_over_the_memory_limit_fails_clearly(servebench: Any, servebench_backend: Any,
                                                      slo: dict[str, Any], photo: bytes) -> None:
    if not servebench_backend.shaper.can_shape:
        pytest.skip(f"memory limits need cgroups: {servebench_backend.shaper.reason}")
    fn = servebench_backend.function("ssd_resnet50", memory_mb=256, name="s001-too-small",
                                     timeout_s=60)
    started = time.monotonic()
    result = servebench.run(ClosedLoop(concurrency=1, requests=1), payload=photo, target=fn,
                            timeout=slo["oom_fail_within"])
    elapsed = time.monotonic() - started
    assert result.success_ratio == 0.0 and set(result.errors) == {"function_error"}, result.errors
    detail = result.records[0].reply.detail or ""
    assert "Runtime.OutOfMemory" in detail and "256 MB" in detail, detail
    assert elapsed < 60


def test_finding_breakeven_calls_per_day(findings: Any, servebench_backend: Any) -> None:
    from pytest_servebench.pricebook import load_price_book

    heavy = findings.need(STUDY, [("ssd_resnet50", "body")], "the heavy model's warm run")[0]
    assert heavy.cost is not None
    server = load_price_book().instance("t2.small").usd_per_hour  # the study's server
    per_day = breakeven_calls_per_day(server, heavy.cost.usd_per_request)
    findings.values[STUDY]["breakeven_calls_per_day"] = per_day
    # Above it the server is cheaper: its daily cost is fixed, the function's grows per call.
    assert per_day * heavy.cost.usd_per_request == pytest.approx(server * 24)
    assert per_day > 0
