"""A server of a GPU instance type on the platform backends: it skips (``GpuUnavailable``, before
anything starts) where there is no GPU or no runtime for one, runs with ``SERVEBENCH_DEVICE=cuda``
where there are both, and every other server is kept on the CPU. The launcher is faked (it
records what a server would be started with); the GPU probe is faked where a GPU must be seen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_servebench import gpu
from pytest_servebench.backends.base import Sandboxes
from pytest_servebench.backends.local.backend import PlatformBackend
from pytest_servebench.gpu import GpuProbe, GpuUnavailable
from pytest_servebench.platforms import Shape


@dataclass
class Started:
    url: str = "http://127.0.0.1:9/predict"  # nothing listens: /health says nothing
    threads: int | None = 2
    ready_s: float = 0.0

    def stop(self) -> None:
        pass


@dataclass
class RecordingLauncher:
    environments: list[Mapping[str, str]] = field(default_factory=list)

    def start(self, target: str, *, shape: Shape, workers: int, threads: int | None,
              slots: int | None, environment: Mapping[str, str], label: str) -> Started:
        self.environments.append(dict(environment))
        return Started()


class NoLimits:
    can_shape = False
    reason = "not shaped in this test"

    def describe(self, shape: Shape) -> dict[str, Any]:
        return {"vcpu": shape.vcpu, "shaping": self.reason}


class NoModels:
    def packaged(self, target: str) -> dict[str, str]:
        return {"SERVEBENCH_MODEL_PATH": f"/models/{target}.onnx"}

    def artifact(self, target: str) -> Any:
        raise AssertionError("not used")


def backend(name: str, launcher: RecordingLauncher) -> PlatformBackend:
    def no_sandboxes() -> Any:
        raise AssertionError("no functions here")

    return PlatformBackend(name, owner="servebench-test-gpu", sandboxes=Sandboxes(no_sandboxes),
                           servers=launcher, artifacts=NoModels(), limits=NoLimits())


@pytest.fixture
def launcher() -> RecordingLauncher:
    return RecordingLauncher()


def test_without_a_gpu_a_gpu_server_skips_before_anything_starts(
        monkeypatch: pytest.MonkeyPatch, launcher: RecordingLauncher) -> None:
    monkeypatch.setattr(gpu, "probe", lambda: GpuProbe((), "no CUDA driver (libcuda.so.1 not "
                                                           "found)"))
    with backend("local", launcher) as b, pytest.raises(
            GpuUnavailable, match=r"g4dn.xlarge \(an NVIDIA T4\) needs a GPU, and this machine "
                                  r"has none \(no CUDA driver"):
        b.server("mobilenet_v2", platform="ec2", instance_type="g4dn.xlarge")
    assert launcher.environments == []


def test_a_gpu_server_runs_on_the_gpu_here_and_says_which(
        monkeypatch: pytest.MonkeyPatch, launcher: RecordingLauncher) -> None:
    monkeypatch.setattr(gpu, "probe", lambda: GpuProbe(("NVIDIA H200",), ""))
    monkeypatch.setattr(gpu, "cuda_runtime", lambda: "onnxruntime-gpu 1.31.1")
    with backend("local", launcher) as b:
        target = b.server("mobilenet_v2", platform="ec2", instance_type="g4dn.xlarge")
        cpu = b.server("mobilenet_v2", platform="ec2", instance_type="c5.large")
    assert [e["SERVEBENCH_DEVICE"] for e in launcher.environments] == ["cuda", "cpu"]
    assert launcher.environments[0]["SERVEBENCH_MODEL_PATH"] == "/models/mobilenet_v2.onnx"
    assert target.profile["gpu"] == "T4" and target.profile["gpu_here"] == "NVIDIA H200"
    assert target.profile["gpu_note"] == ("g4dn.xlarge has an NVIDIA T4; it runs on this "
                                          "machine's NVIDIA H200")
    assert "gpu" not in cpu.profile


def test_the_container_backend_does_not_pass_a_gpu_in(
        monkeypatch: pytest.MonkeyPatch, launcher: RecordingLauncher) -> None:
    monkeypatch.setattr(gpu, "probe", lambda: GpuProbe(("NVIDIA H200",), ""))
    monkeypatch.setattr(gpu, "cuda_runtime", lambda: "onnxruntime-gpu 1.31.1")
    with backend("docker", launcher) as b, pytest.raises(
            GpuUnavailable, match="the docker backend does not pass one into its containers"):
        b.server("mobilenet_v2", platform="sagemaker", instance_type="ml.g4dn.xlarge")
    assert launcher.environments == []


def test_a_server_that_says_what_runs_it_puts_that_in_the_profile() -> None:
    """``served_by`` reads ``/health``; a real server's answer (``targets.app``) is checked in
    ``tests/targets``: here a loopback stand-in answers as it does."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from pytest_servebench.backends.local.server import served_by

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "ok", "device": "cuda",
                               "provider": "CUDAExecutionProvider"}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        assert served_by(url) == {"device": "cuda", "provider": "CUDAExecutionProvider"}
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)
    assert served_by("http://127.0.0.1:9", timeout_s=1.0) == {}
