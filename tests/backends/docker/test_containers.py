"""Functions and servers as containers: cloud-shaped limits that really shape (cold start and
warm latency fall as a function's memory grows, study 003's shape), host networking, labels,
bad input answered, and nothing left behind."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

from pytest_servebench import ClosedLoop
from pytest_servebench.backends.docker.engine import RUN_LABEL
from pytest_servebench.fixture import Servebench

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def image() -> bytes:
    from targets.payloads import jpeg

    return jpeg(224, 224, seed=5)


def _sandbox_containers(backend: Any, function: str) -> list[Any]:
    return [c for c in backend.containers() if c.labels.get("servebench.function") == function]


def _gone(backend: Any, function: str, timeout_s: float = 15.0) -> bool:
    """Retired sandboxes are stopped in the background: wait (bounded) for their containers."""
    deadline = time.monotonic() + timeout_s
    while _sandbox_containers(backend, function):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_memory_size_shapes_cold_start_and_warm_latency(docker_backend: Any,
                                                        image: bytes) -> None:
    """The issue's acceptance: cold start at 512, 1,024 and 2,048 MB falls as memory (and so
    CPU) grows; warm latency at 512 MB vs 2,048 MB shows the CPU shaping."""
    cold_s, warm_ms = {}, {}
    for mb in (512, 1024, 2048):
        fn = docker_backend.function("mobilenet_v2", memory_mb=mb, name=f"shape-{mb}")
        colds = []
        # Three cold starts per size, compared by their medians: one sample each flaked on a
        # busy machine (1,024 MB once started slower than 2,048 MB).
        for repeat in range(3):
            result = Servebench(target=fn).run(
                ClosedLoop(concurrency=1, requests=16 if repeat == 0 else 1), payload=image)
            assert result.success_ratio == 1.0, result.errors
            cold = [r.reply for r in result.records if r.reply.cold_start]
            assert len(cold) == 1
            assert cold[0].init_duration_s is not None
            colds.append(next(r.latency_s for r in result.records if r.reply.cold_start))
            if repeat == 0:
                warm_ms[mb] = statistics.median(r.latency_s * 1000 for r in result.records
                                                if r.reply.cold_start is False)
            docker_backend.force_cold(fn)  # its container goes now, not after the keep-alive
        cold_s[mb] = statistics.median(colds)
    print(f"cold s {cold_s}, warm p50 ms {warm_ms}")
    assert cold_s[512] > cold_s[1024] > cold_s[2048]
    # 0.29 vs 1.16 vCPU: four times the CPU; ask for half of that to stay clear of noise.
    assert warm_ms[512] > 2 * warm_ms[2048]


def test_a_sandbox_is_a_labelled_host_network_container_with_lambda_limits(
        docker_backend: Any, image: bytes) -> None:
    fn = docker_backend.function("mobilenet_v2", memory_mb=1024, name="limits",
                                 keep_alive_s=600)
    assert Servebench(target=fn).run(ClosedLoop(concurrency=1, requests=2),
                                     payload=image).success_ratio == 1.0
    (box,) = _sandbox_containers(docker_backend, "limits")
    host = box.attrs["HostConfig"]
    assert host["NetworkMode"] == "host"
    assert host["Memory"] == 1024 * 2**20 and host["MemorySwap"] == 1024 * 2**20
    assert host["CpuQuota"] / host["CpuPeriod"] == pytest.approx(1024 / 1769, abs=1e-3)
    assert box.labels[RUN_LABEL] == docker_backend.owner
    profile = fn.describe()
    assert profile["backend"] == "docker" and profile["shaped"] is True
    docker_backend.force_cold(fn)
    assert _gone(docker_backend, "limits")


def test_concurrent_cold_starts_get_one_container_each(docker_backend: Any,
                                                       image: bytes) -> None:
    fn = docker_backend.function("mobilenet_v2", memory_mb=1769, name="burst")
    result = Servebench(target=fn).run(ClosedLoop(concurrency=4, requests=4), payload=image)
    assert result.success_ratio == 1.0, result.errors
    assert result.cold_starts is not None and result.cold_starts.count == 4
    assert len({r.reply.sandbox_id for r in result.records}) == 4
    assert len(_sandbox_containers(docker_backend, "burst")) == 4
    docker_backend.force_cold(fn)


def test_a_model_from_object_storage_reaches_the_host_loopback(docker_backend: Any,
                                                               image: bytes) -> None:
    """Host networking: the container downloads its model from moto's S3 on 127.0.0.1."""
    fn = docker_backend.function("mobilenet_v2", memory_mb=2048, model_from="s3")
    result = Servebench(target=fn).run(ClosedLoop(concurrency=1, requests=2), payload=image)
    assert result.success_ratio == 1.0, result.errors
    cold = next(r.reply for r in result.records if r.reply.cold_start)
    assert cold.extra["init_phases"]["download_s"] > 0
    docker_backend.force_cold(fn)


def test_bad_input_is_a_4xx_from_the_container(docker_backend: Any) -> None:
    fn = docker_backend.function("mobilenet_v2", memory_mb=1024, name="bad")
    result = Servebench(target=fn).run(ClosedLoop(concurrency=1, requests=3),
                                       payload=b"not an image")
    assert set(result.errors) == {"http_415"}
    docker_backend.force_cold(fn)


def test_servers_get_their_instance_or_task_shape(docker_backend: Any, image: bytes) -> None:
    srv = docker_backend.server("mobilenet_v2", platform="ec2", instance_type="t2.small")
    result = Servebench(target=srv).run(ClosedLoop(concurrency=2, requests=20), payload=image)
    assert result.success_ratio == 1.0 and result.cold_starts is None
    bad = Servebench(target=srv).run(ClosedLoop(concurrency=1, requests=2), payload=b"\x00" * 9)
    assert set(bad.errors) == {"http_415"}
    fargate = docker_backend.server("mobilenet_v2", platform="fargate", vcpu=0.25,
                                    memory_gb=0.5)
    servers = {c.labels["servebench.server"]: c.attrs["HostConfig"]
               for c in docker_backend.containers() if "servebench.server" in c.labels}
    ec2, task = servers["ec2-mobilenet_v2"], servers["fargate-mobilenet_v2"]
    assert (ec2["CpuQuota"] / ec2["CpuPeriod"], ec2["Memory"]) == (1.0, 2 * 2**30)
    assert (task["CpuQuota"] / task["CpuPeriod"], task["Memory"]) == (0.25, 512 * 2**20)
    assert ec2["NetworkMode"] == task["NetworkMode"] == "host"
    # One at a time on each (no queueing): a quarter vCPU against one takes longer.
    one = Servebench(target=srv).run(ClosedLoop(concurrency=1, requests=15), payload=image)
    slow = Servebench(target=fargate).run(ClosedLoop(concurrency=1, requests=15),
                                          payload=image)
    assert one.success_ratio == slow.success_ratio == 1.0
    assert slow.latency.p50.value > 2 * one.latency.p50.value
    docker_backend.stop_server(fargate)
    docker_backend.stop_server(srv)
    assert not [c for c in docker_backend.containers() if "servebench.server" in c.labels]


def test_a_model_over_the_memory_size_is_an_out_of_memory_error(docker_backend: Any,
                                                                image: bytes) -> None:
    """The kernel kills the runtime inside the container (the emulator lives on, so Docker's
    own OOMKilled stays false): the platform reads the container's cgroup and says
    Runtime.OutOfMemory, in seconds, not a hang."""
    fn = docker_backend.function("ssd_resnet50", memory_mb=128, name="too-small", timeout_s=60)
    started = time.monotonic()
    result = Servebench(target=fn).run(ClosedLoop(concurrency=1, requests=1), payload=image,
                                       timeout=90)
    assert set(result.errors) == {"function_error"}, result.errors
    detail = result.records[0].reply.detail or ""
    assert "Runtime.OutOfMemory" in detail and "128 MB" in detail, detail
    assert time.monotonic() - started < 90
    docker_backend.force_cold(fn)
