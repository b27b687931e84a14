"""Where the targets' runtime runs a model (``SERVEBENCH_DEVICE``): the CUDA provider when asked
and present, a clear error when asked and absent, the CPU otherwise; and which provider ran is
in ``describe()`` (the server's ``/health``, so in a result's profile). ONNX Runtime and torch are
faked for the GPU side (CI has no GPU); the CPU side is the real onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from targets.core import runtime
from targets.core.runtime import DeviceError


class FakeSession:
    def __init__(self, path: str, options: Any, providers: list[str]) -> None:
        self.asked = providers
        self.ran = [p for p in providers if p in FakeOrt.starts]

    def get_providers(self) -> list[str]:
        return self.ran


class FakeOrt:
    """onnxruntime's surface the runtime uses; ``starts``: the providers that really start."""

    starts: tuple[str, ...] = ("CPUExecutionProvider",)

    def __init__(self, available: list[str]) -> None:
        self.available = available
        self.preloaded = 0
        self.__version__ = "1.31.1"
        self.InferenceSession = FakeSession

    def get_available_providers(self) -> list[str]:
        return self.available

    def preload_dlls(self) -> None:
        self.preloaded += 1


def test_the_device_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVEBENCH_DEVICE", raising=False)
    assert runtime.default_device() == "auto"
    monkeypatch.setenv("SERVEBENCH_DEVICE", " CUDA ")
    assert runtime.default_device() == "cuda"
    monkeypatch.setenv("SERVEBENCH_DEVICE", "gpu")
    with pytest.raises(ValueError, match="SERVEBENCH_DEVICE is one of auto, cpu, cuda, not 'gpu'"):
        runtime.default_device()


def test_providers_asked_for_by_device() -> None:
    cpu_only = FakeOrt(["CPUExecutionProvider"])
    gpu_build = FakeOrt(["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert runtime._ort_providers(cpu_only, "auto") == ["CPUExecutionProvider"]
    assert runtime._ort_providers(gpu_build, "cpu") == ["CPUExecutionProvider"]
    assert gpu_build.preloaded == 0
    assert runtime._ort_providers(gpu_build, "auto") == ["CUDAExecutionProvider",
                                                         "CPUExecutionProvider"]
    assert gpu_build.preloaded == 1  # CUDA and cuDNN from the nvidia-* wheels, first
    with pytest.raises(DeviceError, match=r"has no CUDAExecutionProvider .* pip install "
                                          r"'pytest-servebench\[gpu\]'"):
        runtime._ort_providers(cpu_only, "cuda")


def test_a_cuda_provider_that_cannot_start_is_an_error_only_when_cuda_was_asked_for(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """ONNX Runtime falls back to the CPU when its CUDA provider cannot start (no GPU visible,
    libraries missing): the runtime says so rather than serve a 'GPU' case on the CPU."""
    import onnxruntime

    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    fake = FakeOrt(["CUDAExecutionProvider", "CPUExecutionProvider"])
    for name in ("SessionOptions", "GraphOptimizationLevel"):
        setattr(fake, name, getattr(onnxruntime, name))
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", fake)
    assert runtime._ort_session(model, 1, "auto").get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(DeviceError, match="fell back to CPUExecutionProvider"):
        runtime._ort_session(model, 1, "cuda")
    monkeypatch.setattr(FakeOrt, "starts", ("CUDAExecutionProvider", "CPUExecutionProvider"))
    assert runtime._ort_session(model, 1, "cuda").get_providers()[0] == "CUDAExecutionProvider"


class FakeTorch:
    __version__ = "2.13.0+cpu"

    def __init__(self, cuda: bool) -> None:
        self.cuda = type("cuda", (), {"is_available": staticmethod(lambda: cuda)})


def test_torch_runs_on_the_gpu_it_sees() -> None:
    assert runtime._torch_device(FakeTorch(cuda=True), "auto") == "cuda"
    assert runtime._torch_device(FakeTorch(cuda=True), "cpu") == "cpu"
    assert runtime._torch_device(FakeTorch(cuda=False), "auto") == "cpu"
    with pytest.raises(DeviceError, match=r"torch 2.13.0\+cpu sees no CUDA device"):
        runtime._torch_device(FakeTorch(cuda=False), "cuda")


def test_the_provider_that_ran_is_described(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real onnxruntime: on the CPU when asked; asked for CUDA where its CUDA build is not
    installed (CI), loading fails and says what to install."""
    import onnxruntime

    pytest.importorskip("torch", reason="building the model needs the [build] extra (torch)")
    monkeypatch.setenv("SERVEBENCH_DEVICE", "cpu")
    core = runtime.load_core("mobilenet_v2", threads=1)
    described = core.describe()
    assert (described["device"], described["provider"]) == ("cpu", "CPUExecutionProvider")
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here: the CPU build's error cannot be shown")
    monkeypatch.setenv("SERVEBENCH_DEVICE", "cuda")
    with pytest.raises(DeviceError, match="has no CUDAExecutionProvider"):
        runtime.load_core("mobilenet_v2", threads=1)
