"""The local backend end to end: a model served as a function and as a server, measured by the
engine, and nothing left running afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pytest_servebench import ClosedLoop
from pytest_servebench.backends.local.processes import StartError, tagged_processes
from pytest_servebench.fixture import Servebench
from pytest_servebench.waiting import wait_for

pytest.importorskip("onnxruntime", reason="the targets need the [targets] extra")
pytest.importorskip("awslambdaric", reason="the local Lambda platform needs [functions]")


@pytest.fixture(scope="module")
def backend() -> Iterator[Any]:
    from pytest_servebench.backends.local import LocalBackend

    be = LocalBackend()
    yield be
    be.close()
    assert tagged_processes(be.owner) == []


@pytest.fixture(scope="module")
def image() -> bytes:
    from targets.payloads import jpeg

    return jpeg(320, 240, seed=3)


def test_a_function_reports_cold_then_warm_with_the_phases(backend: Any, image: bytes) -> None:
    fn = backend.function("mobilenet_v2", memory_mb=2048, name="phases")
    result = Servebench(target=fn).run(ClosedLoop(concurrency=1, requests=12), payload=image)
    assert result.success_ratio == 1.0
    assert result.cold_starts is not None and result.cold_starts.count == 1
    assert result.cold_starts.warm_count == 11
    cold = next(r.reply for r in result.records if r.reply.cold_start)
    phases = cold.extra["init_phases"]
    for key in ("sandbox_start_s", "runtime_start_s", "runtime_client_s", "import_s",
                "model_load_s", "first_inference_s"):
        assert phases[key] >= 0, key
    assert cold.init_duration_s is not None
    # The phases the handler measured fit inside the platform's Init Duration.
    assert phases["import_s"] + phases["model_load_s"] < cold.init_duration_s
    warm = [r.reply for r in result.records if r.reply.cold_start is False]
    assert all(w.billed_duration_s and w.duration_s is not None
               and w.billed_duration_s >= w.duration_s for w in warm)
    assert len({w.sandbox_id for w in warm}) == 1
    profile = fn.describe()
    assert profile["platform"] == "lambda" and profile["memory_mb"] == 2048
    assert profile["vcpu"] == pytest.approx(2048 / 1769, abs=1e-3)


def test_a_model_from_object_storage_and_parallel_init(backend: Any, image: bytes) -> None:
    """Study 004's setup: the function downloads its model from S3 at init (moto's server on
    loopback); parallel init overlaps the download with the imports."""
    phases = {}
    for parallel in (False, True):
        fn = backend.function("mobilenet_v2", memory_mb=2048, model_from="s3",
                              parallel_init=parallel)
        assert fn.describe()["model_from"] == "s3"
        result = Servebench(target=fn).run(ClosedLoop(concurrency=1, requests=3), payload=image)
        assert result.success_ratio == 1.0, result.errors
        cold = next(r.reply for r in result.records if r.reply.cold_start)
        phases[parallel] = cold.extra["init_phases"]
    assert phases[False]["parallel"] == 0.0 and phases[False]["download_s"] > 0
    assert phases[True]["parallel"] == 1.0 and "download_wait_s" in phases[True]
    assert backend.object_store.endpoint_url.startswith("http://127.0.0.1:")


def test_parallel_init_without_a_download_has_nothing_to_overlap(backend: Any,
                                                                  image: bytes) -> None:
    fn = backend.function("mobilenet_v2", memory_mb=2048, parallel_init=True)
    result = Servebench(target=fn).run(ClosedLoop(concurrency=1, requests=2), payload=image)
    cold = next(r.reply for r in result.records if r.reply.cold_start)
    assert cold.extra["init_phases"]["parallel"] == 0.0


def test_bad_input_through_a_function_is_a_4xx_not_a_crash(backend: Any) -> None:
    fn = backend.function("mobilenet_v2", memory_mb=1024, name="badinput")
    sb = Servebench(target=fn)
    result = sb.run(ClosedLoop(concurrency=1, requests=3), payload=b"not an image")
    assert result.success_ratio == 0.0 and set(result.errors) == {"http_415"}
    good = sb.run(ClosedLoop(concurrency=1, requests=2), payload={"text": "a text"})
    assert set(good.errors) == {"function_error"}  # a direct invoke raises BadInput


def test_a_server_shaped_like_an_instance(backend: Any, image: bytes) -> None:
    srv = backend.server("mobilenet_v2", platform="ec2", instance_type="c5.large")
    profile = srv.describe()
    assert (profile["instance_type"], profile["vcpu"], profile["memory_gb"]) == (
        "c5.large", 2, 4)
    result = Servebench(target=srv).run(ClosedLoop(concurrency=2, requests=40), payload=image)
    assert result.success_ratio == 1.0 and result.cold_starts is None
    fargate = backend.server("text_rf", platform="fargate", vcpu=0.5, memory_gb=1)
    r2 = Servebench(target=fargate).run(ClosedLoop(concurrency=1, requests=10),
                                        payload={"text": "you are great"})
    assert r2.success_ratio == 1.0 and fargate.describe()["vcpu"] == 0.5
    backend.stop_server(fargate)
    r3 = Servebench(target=fargate).run(ClosedLoop(concurrency=1, requests=2),
                                        payload={"text": "x"})
    assert set(r3.errors) == {"connect"}  # stopped: nothing listens any more
    with pytest.raises(LookupError):
        backend.stop_server(fargate)


def test_an_arm_instance_says_it_was_not_run_as_arm(backend: Any) -> None:
    import os

    srv = backend.server("text_rf", platform="ec2", instance_type="t4g.medium")
    note = srv.describe().get("arch_note")
    assert srv.describe()["arch"] == "arm64"
    if os.uname().machine == "x86_64":  # it was run as x86_64: the profile must say so
        assert note == ("t4g.medium is arm64; it runs as x86_64 here, shaped to its vCPU and "
                        "memory only")
    else:
        assert note is None
    backend.stop_server(srv)


def test_a_server_that_cannot_start_fails_fast_with_its_log() -> None:
    from pytest_servebench.backends.local.server import ServerProcess
    from pytest_servebench.backends.local.shaping import Shaper

    with pytest.raises(StartError, match=r"exited with status(.|\n)*(No such file|Error)"):
        ServerProcess("mobilenet_v2", owner="test-owner", shape=None, shaper=Shaper(),
                      environment={"SERVEBENCH_MODEL_PATH": "/nonexistent/model.onnx"},
                      start_timeout_s=60)
    assert tagged_processes("test-owner") == []


def test_unknown_platforms_and_missing_sizes_are_refused(backend: Any) -> None:
    with pytest.raises(ValueError, match="server platform"):
        backend.server(platform="lambda")
    with pytest.raises(ValueError, match="vcpu= and memory_gb="):
        backend.server(platform="fargate")
    # Sizes the platforms do not offer, refused before anything starts.
    with pytest.raises(ValueError, match=r"Fargate offers 0\.25 vCPU with 0\.5, 1 or 2 GB"):
        backend.server(platform="fargate", vcpu=0.25, memory_gb=4)
    with pytest.raises(ValueError, match="SageMaker instance type"):
        backend.server(platform="ec2", instance_type="ml.c5.large")
    with pytest.raises(ValueError, match=r"no ml\.t2\.micro"):
        backend.server(platform="sagemaker", instance_type="t2.micro")
    with pytest.raises(ValueError, match=r"128\.\.10240"):
        backend.function(memory_mb=64)
    with pytest.raises(ValueError, match="model_from"):
        backend.function(model_from="ftp")


def test_an_encoding_function_calls_an_inference_function(backend: Any, image: bytes) -> None:
    """Study 001's architecture 6: an S3 event to ``targets.pipeline`` (no model of its own),
    which resizes the image and invokes the detector's function; the answer lands in S3; an
    object that is not an image is the caller's error (4xx), not a crash."""
    import json

    from pytest_servebench.target import Payload

    store = backend.object_store
    inference = backend.function("mobilenet_v2", memory_mb=2048, name="inference")
    encoder = backend.function("mobilenet_v2", memory_mb=1024, name="encoder",
                               handler="targets.pipeline.handler",
                               environment={**store.environment(),
                                            "SERVEBENCH_INFERENCE_FUNCTION": "inference",
                                            "SERVEBENCH_LAMBDA_ENDPOINT": inference.endpoint_url,
                                            "SERVEBENCH_ENCODE_SIZE": "224"})
    store.put(image, "uploads", "cat.jpg")
    store.put(b"not an image", "uploads", "bad.jpg")

    def event(key: str) -> Payload:
        return Payload(json.dumps({"Records": [{"s3": {"bucket": {"name": "uploads"},
                                                       "object": {"key": key}}}]}).encode(),
                       "application/json")

    sb = Servebench(target=encoder)
    good = sb.run(ClosedLoop(concurrency=1, requests=3), payload=event("cat.jpg"))
    assert good.success_ratio == 1.0, good.errors
    answer = json.loads(store.get("uploads", "results/cat.jpg.json"))
    assert answer["target"] == "mobilenet_v2" and len(answer["classes"]) == 5
    # The encoder loaded no model: far less memory than the function it calls.
    enc_mb = max(r.reply.max_memory_mb or 0 for r in good.records)
    inf = Servebench(target=inference).run(ClosedLoop(concurrency=1, requests=1), payload=image)
    assert enc_mb < (inf.records[0].reply.max_memory_mb or 0)
    bad = sb.run(ClosedLoop(concurrency=1, requests=1), payload=event("bad.jpg"))
    assert set(bad.errors) == {"function_error"}
    assert "415" in (bad.records[0].reply.detail or "")


def test_a_removed_function_stops_its_sandboxes_and_deploys_afresh(backend: Any,
                                                                   image: bytes) -> None:
    """``remove_function`` (what a module's deployments do at its end): the sandboxes go, the
    name is free, and deploying it again starts cold."""
    fn = backend.function("mobilenet_v2", memory_mb=1024, name="removed")
    first = Servebench(target=fn).run(ClosedLoop(concurrency=1, requests=3), payload=image)
    assert first.success_ratio == 1.0 and first.cold_starts is not None
    running = len(tagged_processes(backend.owner))
    assert running >= 1
    backend.remove_function(fn)
    wait_for(lambda: len(tagged_processes(backend.owner)) < running, timeout_s=10,
             what="the removed function's sandbox to stop")
    assert backend.platform.platform is not None
    assert "removed" not in backend.platform.platform.functions
    with pytest.raises(LookupError, match="removed"):
        backend.remove_function(fn)
    again = backend.function("mobilenet_v2", memory_mb=1024, name="removed")
    second = Servebench(target=again).run(ClosedLoop(concurrency=1, requests=3), payload=image)
    assert second.success_ratio == 1.0
    assert second.cold_starts is not None and second.cold_starts.count == 1
    backend.remove_function(again)
