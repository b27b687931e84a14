"""Study 001: object detection served without and with a server, light and heavy models
(``shared/seeds/001_1523139501f6ea4c.txt``).

Cases: a light detector (SSDlite-MobileNetV2) and a heavy one (SSD-ResNet-50) as functions, the
image sent in the request body (architecture 5) or through object storage (S3 notification
event; the function reads the image from S3 and writes its result back: moto's S3 server on
loopback is a real S3 API); the heavy model on a server that loads it from S3 or has it on disk
(architectures 3 and 4), and an S3 upload that triggers a function calling that server
(architectures 1 and 2); cold and warm billed time and memory per model; a model over the
memory limit fails with a clear error, not a hang; the break-even calls per day between a
server and the function, from the measured numbers; architecture 6, all serverless: an S3 upload
triggers an encoding function (``targets.pipeline``) that resizes the image and invokes the
heavy model's function through the Invoke API, the answer written back to S3.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from pytest_servebench import ClosedLoop
from pytest_servebench.backends.base import Backend
from pytest_servebench.cost import breakeven_calls_per_day
from pytest_servebench.deployments import Deployments
from pytest_servebench.functions.client import FunctionTarget
from pytest_servebench.target import Payload

# A detection model's function (the ``detector`` fixture).
Detector = Callable[[str], FunctionTarget]
STUDY = "001"
MODELS = ["ssdlite_mobilenet_v2", "ssd_resnet50"]
HEAVY_MODEL = "ssd_resnet50"
BUCKET = "servebench-s001"

LAMBDA = pytest.mark.study_target("lambda")


@pytest.fixture(scope="module")
def object_store(servebench_backend: Any) -> Any:
    """The object store whose uploads trigger functions (the platform backends' S3 on
    loopback); a backend without one skips the study's S3 architectures, saying why."""
    store = getattr(servebench_backend, "object_store", None)
    if store is None:
        pytest.skip(f"the {servebench_backend.name} backend has no object store wired to its "
                    "functions (S3 event notifications to Lambda are not built on aws)")
    return store


@pytest.fixture(scope="module")
def detector(servebench_deploy: Deployments, servebench_backend: Any) -> Detector:
    """A detection model's function, reading photos from the backend's object store (where
    the backend has one)."""
    store = getattr(servebench_backend, "object_store", None)

    def get(model: str) -> FunctionTarget:
        def deploy(backend: Backend) -> FunctionTarget:
            return backend.function(model, memory_mb=2048, name=f"s001-{model}", timeout_s=60,
                                    environment=store.environment() if store else None)

        fn = servebench_deploy.get(model, deploy)
        assert isinstance(fn, FunctionTarget), fn  # no http keys here
        return fn

    return get


@pytest.fixture(scope="module")
def photo() -> bytes:
    from targets.payloads import jpeg

    return jpeg(640, 480, seed=1)


def _s3_event(key: str) -> Payload:
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}}]}
    return Payload(json.dumps(event).encode(), "application/json")


@LAMBDA
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("path", ["body", "s3"])
def test_warm_inference_by_architecture(servebench: Any, request: pytest.FixtureRequest,
                                        detector: Detector, findings: Any, slo: dict[str, Any],
                                        photo: bytes, path: str, model: str) -> None:
    fn = detector(model)
    if path == "s3":
        object_store = request.getfixturevalue("object_store")  # skips without one
        key = f"inputs/{model}.jpg"
        object_store.put(photo, BUCKET, key)
        payload: Any = _s3_event(key)
    else:
        payload = photo
    result = servebench.run(ClosedLoop(concurrency=1, requests=slo["warm_requests"],
                                       warmup_requests=1),
                            payload=payload, target=fn)
    result.check(f"success_ratio >= {slo['success_ratio_min']}",
                 f"{slo['tail']} < {slo['warm_tail_max']}")
    findings.results[STUDY][(model, path)] = result
    if path == "s3":  # the answer went back through S3
        answer = json.loads(object_store.get(BUCKET, f"results/{key}.json"))
        assert answer["target"] == model and isinstance(answer["boxes"], list)


@LAMBDA
@pytest.mark.parametrize("model", MODELS)
def test_cold_and_warm_billing(servebench: Any, servebench_backend: Any, detector: Detector,
                               findings: Any, slo: dict[str, Any], photo: bytes,
                               model: str) -> None:
    fn = detector(model)
    cold_billed: list[float] = []
    for _ in range(slo["cold_repeats"]):
        servebench_backend.force_cold(fn)
        cold = servebench.run(ClosedLoop(concurrency=1, requests=1), payload=photo, target=fn)
        cold.check("success_ratio >= 1", f"max < {slo['cold_start_max']}")
        c = cold.records[0].reply
        assert c.cold_start
        # Billed time counts the init phase on a cold start (AWS's rule since August 2025).
        assert c.billed_duration_s is not None and c.init_duration_s is not None
        assert c.billed_duration_s >= c.init_duration_s + (c.duration_s or 0) - 0.001
        cold_billed.append(c.billed_duration_s)
    warm = servebench.run(ClosedLoop(concurrency=1, requests=10), payload=photo, target=fn)
    w = [r.reply for r in warm.records]
    assert all(r.cold_start is False for r in w)
    findings.values[STUDY][("billed", model)] = (cold_billed,
                                                 [r.billed_duration_s or 0 for r in w])
    findings.values[STUDY][("memory", model)] = max(r.max_memory_mb or 0 for r in w)


def test_finding_the_heavy_model_costs_more_time_and_memory(findings: Any) -> None:
    """Billed time: the warm calls' medians, decidedly apart (95% intervals); the cold starts'
    medians (cold_repeats of them, too few for an interval; about 3x apart here)."""
    got = findings.values.get(STUDY, {})
    needed = [("billed", m) for m in MODELS] + [("memory", m) for m in MODELS]
    if any(k not in got for k in needed):
        pytest.skip("needs the cold/warm billing of both models in this run")
    (light_cold, light_warm), (heavy_cold, heavy_warm) = (
        (statistics.median(cold), findings.median_of(warm))
        for cold, warm in (got[("billed", m)] for m in MODELS))
    assert heavy_warm.low > light_warm.high, (
        f"warm billed time: {HEAVY_MODEL} {findings.shown(heavy_warm)} is not decidedly above "
        f"{MODELS[0]} {findings.shown(light_warm)}")
    assert heavy_cold > light_cold, (
        f"median cold billed time: {HEAVY_MODEL} {heavy_cold * 1000:.0f} ms, "
        f"{MODELS[0]} {light_cold * 1000:.0f} ms")
    assert got[("memory", "ssd_resnet50")] > got[("memory", "ssdlite_mobilenet_v2")], got


@LAMBDA
def test_a_model_over_the_memory_limit_fails_clearly(servebench: Any, servebench_backend: Any,
                                                      slo: dict[str, Any], photo: bytes) -> None:
    capabilities = servebench_backend.capabilities()
    if not capabilities.memory_limits:
        pytest.skip(f"needs memory limits, which this backend lacks: {capabilities.limits}")
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


@pytest.mark.study_target("ec2")
@pytest.mark.parametrize("model_from", ["package", "s3"], ids=["model-on-server",
                                                                "model-from-s3"])
def test_server_architectures(servebench: Any, servebench_backend: Any, findings: Any,
                              slo: dict[str, Any], photo: bytes, model_from: str) -> None:
    """Architectures 3 and 4: the image in the request body to a server that loads the heavy
    model from S3 as it starts, or has it on its disk."""
    server = servebench_backend.server(HEAVY_MODEL, platform="ec2", instance_type="t2.small",
                                       model_from=model_from)
    result = servebench.run(ClosedLoop(concurrency=1, requests=slo["warm_requests"],
                                       warmup_requests=1),
                            payload=photo, target=server)
    result.check(f"success_ratio >= {slo['success_ratio_min']}",
                 f"{slo['tail']} < {slo['warm_tail_max']}")
    findings.results[STUDY][("server", model_from)] = result
    findings.values[STUDY][("server_ready_s", model_from)] = server.describe()["ready_s"]
    if model_from == "package":
        findings.values[STUDY]["server_url"] = server.url


def test_finding_a_model_from_s3_delays_the_server_start(findings: Any) -> None:
    got = findings.values.get(STUDY, {})
    if ("server_ready_s", "s3") not in got or ("server_ready_s", "package") not in got:
        pytest.skip("needs both server architectures measured in this run")
    # One start each, about 6x apart here (the download from S3 takes seconds on its own).
    assert got[("server_ready_s", "s3")] > got[("server_ready_s", "package")], (
        f"ready after {got[('server_ready_s', 's3')]:.2f} s loading the model from S3 vs "
        f"{got[('server_ready_s', 'package')]:.2f} s with it on disk")


@LAMBDA
def test_s3_upload_triggers_a_function_that_calls_the_server(
        servebench: Any, servebench_backend: Any, object_store: Any, findings: Any,
        slo: dict[str, Any], photo: bytes) -> None:
    """Architectures 1 and 2: an upload to S3 triggers a function that sends the image to the
    server and writes the server's answer back to S3."""
    url = findings.values.get(STUDY, {}).get("server_url")
    if url is None:
        pytest.skip("needs the model-on-server architecture's server (run the whole file)")
    store = object_store
    fn = servebench_backend.function("text_rf", memory_mb=512, name="s001-s3-to-server",
                                     handler="targets.router.handler", timeout_s=60,
                                     environment={**store.environment(),
                                                  "SERVEBENCH_OFFLOAD_URL": url})
    key = "inputs/to-server.jpg"
    store.put(photo, BUCKET, key)
    result = servebench.run(ClosedLoop(concurrency=1, requests=slo["warm_requests"],
                                       warmup_requests=1),
                            payload=_s3_event(key), target=fn)
    result.check(f"success_ratio >= {slo['success_ratio_min']}")
    answer = json.loads(store.get(BUCKET, f"results/{key}.json"))
    assert answer["target"] == HEAVY_MODEL and isinstance(answer["boxes"], list)
    findings.results[STUDY][("s3-function-server", HEAVY_MODEL)] = result


@LAMBDA
def test_s3_upload_triggers_an_encoding_function_that_calls_an_inference_function(
        servebench: Any, servebench_backend: Any, object_store: Any, detector: Detector,
        findings: Any, slo: dict[str, Any], photo: bytes) -> None:
    """Architecture 6: both functions bill; the encoder waits for the inference function. The
    encoder sends the detector a 320 x 320 JPEG instead of the upload, so the inference
    function receives less than the image in S3."""
    inference = detector(HEAVY_MODEL)
    store = object_store
    encoder = servebench_backend.function(
        HEAVY_MODEL, memory_mb=512, name="s001-encoder", handler="targets.pipeline.handler",
        timeout_s=60, environment={**store.environment(),
                                   "SERVEBENCH_INFERENCE_FUNCTION": inference.function,
                                   "SERVEBENCH_LAMBDA_ENDPOINT": inference.endpoint_url})
    key = "inputs/to-encoder.jpg"
    store.put(photo, BUCKET, key)
    result = servebench.run(ClosedLoop(concurrency=1, requests=slo["warm_requests"],
                                       warmup_requests=1),
                            payload=_s3_event(key), target=encoder)
    result.check(f"success_ratio >= {slo['success_ratio_min']}",
                 f"{slo['tail']} < {slo['warm_tail_max']}")
    answer = json.loads(store.get(BUCKET, f"results/{key}.json"))
    assert answer["target"] == HEAVY_MODEL and isinstance(answer["boxes"], list)
    findings.results[STUDY][("encoder-function", HEAVY_MODEL)] = result


def test_finding_the_all_serverless_pipeline_bills_two_functions(findings: Any,
                                                                 slo: dict[str, Any]) -> None:
    """Architecture 6 against 5 (the image in the body of one function): the pipeline is
    slower, and its encoder is billed for the whole wait on the inference function, so a
    request pays for the inference twice over in time (once in each function).

    The pipeline adds a resize and a hop to the same inference (about 15% here), and the two
    are measured seconds apart: each comparison fails when the side expected larger is
    decidedly below the other (95% intervals) by more than ``drift_tolerance``."""
    body, pipeline = findings.need(STUDY, [(HEAVY_MODEL, "body"),
                                           ("encoder-function", HEAVY_MODEL)],
                                   "the heavy model's body path and the pipeline")
    assert body.cost is not None and pipeline.cost is not None
    tolerance = slo["drift_tolerance"]
    assert pipeline.p50.high * tolerance >= body.p50.low, (
        f"the pipeline's p50 {findings.shown(pipeline.p50)} is decidedly below one "
        f"function's {findings.shown(body.p50)}")
    encoder_billed = findings.median_of(r.reply.billed_duration_s or 0
                                        for r in pipeline.records)
    inference = findings.median_of(r.reply.duration_s or 0 for r in body.records)
    assert encoder_billed.high * tolerance >= inference.low, (
        f"the encoder's median billed time {findings.shown(encoder_billed)} is decidedly below "
        f"the inference it waits for, {findings.shown(inference)}")
    print(f"p50: one function {findings.shown(body.p50)}, pipeline "
          f"{findings.shown(pipeline.p50)}; encoder billed {findings.shown(encoder_billed)} "
          f"vs inference {findings.shown(inference)}")
    print(f"per million: one function ${body.cost.usd_per_million:.2f}, pipeline "
          f"${pipeline.cost.usd_per_million + body.cost.usd_per_million:.2f} "
          f"(encoder ${pipeline.cost.usd_per_million:.2f} + inference)")
