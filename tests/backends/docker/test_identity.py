"""Container targets deployed twice (other containers, ports, ready times) share one history
key: baselines match on the docker backend too."""

from __future__ import annotations

from typing import Any

from pytest_servebench.history import entry_key, identity

WORKLOAD = {"kind": "closed", "concurrency": 1, "requests": 10}


def _key(target: Any) -> str:
    return entry_key(identity("t.py::test_x", target.name, target.describe(), "docker",
                              WORKLOAD))


def test_docker_targets_deployed_twice_share_a_key(docker_backend: Any) -> None:
    first = docker_backend.server("text_rf", platform="ec2", instance_type="t3.medium")
    second = docker_backend.server("text_rf", platform="ec2", instance_type="t3.medium")
    try:
        assert first.url != second.url
        assert _key(first) == _key(second)
        fn = docker_backend.function("text_rf", memory_mb=512)
        again = docker_backend.function("text_rf", memory_mb=512)
        assert _key(fn) == _key(again)
        assert fn.describe()["backend"] == "docker"
    finally:
        docker_backend.stop_server(first)
        docker_backend.stop_server(second)
