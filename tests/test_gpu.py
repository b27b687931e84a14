"""``pytest_servebench.gpu``: the CUDA driver's answer through ctypes, and the reasons a GPU case
skips. The driver is faked here (CI has no GPU); ``benchmarks/bench_gpu.py`` and the 004 suite's
GPU cases ran against a real one (the #18 closing note has the figures)."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from pytest_servebench import gpu
from pytest_servebench.gpu import GpuProbe, GpuUnavailable


class FakeDriver:
    """libcuda's four calls the probe makes, with ``names`` as its devices."""

    def __init__(self, names: list[str], *, init: int = 0) -> None:
        self.names, self.init = names, init

    def cuInit(self, flags: int) -> int:
        return self.init

    def cuDeviceGetCount(self, count: Any) -> int:
        count._obj.value = len(self.names)
        return 0

    def cuDeviceGet(self, dev: Any, i: int) -> int:
        dev._obj.value = i
        return 0

    def cuDeviceGetName(self, buf: Any, size: int, dev: Any) -> int:
        buf.value = self.names[dev.value].encode()[: size - 1]
        return 0


def test_a_machine_without_the_driver_has_no_gpu_and_says_why() -> None:
    found = gpu._driver_probe("libservebench-no-such-driver.so.1")
    assert not found.available
    assert "libservebench-no-such-driver.so.1 not found" in found.reason


def test_the_driver_names_each_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes, "CDLL", lambda _: FakeDriver(["NVIDIA H200", "NVIDIA T4"]))
    found = gpu._driver_probe()
    assert found == GpuProbe(("NVIDIA H200", "NVIDIA T4"), "")
    assert found.describe() == "NVIDIA H200, NVIDIA T4"


@pytest.mark.parametrize(("driver", "why"), [
    (FakeDriver([], init=100), "cuInit failed"),
    (FakeDriver([]), "sees no device"),
])
def test_a_driver_without_devices_is_no_gpu(monkeypatch: pytest.MonkeyPatch, driver: FakeDriver,
                                            why: str) -> None:
    monkeypatch.setattr(ctypes, "CDLL", lambda _: driver)
    found = gpu._driver_probe()
    assert not found.available and why in found.reason


def test_require_names_what_is_missing() -> None:
    none = GpuProbe((), "no CUDA driver (libcuda.so.1 not found)")
    with pytest.raises(GpuUnavailable, match=r"g4dn.xlarge needs a GPU, and this machine has "
                                             r"none \(no CUDA driver"):
        gpu.require("g4dn.xlarge", gpus=none)
    h200 = GpuProbe(("NVIDIA H200",), "")
    with pytest.raises(GpuUnavailable, match=r"has NVIDIA H200, but ONNX Runtime's CUDA build "
                                             r"is not installed: pip uninstall"):
        gpu.require("g4dn.xlarge", gpus=h200, runtime=None)
    assert gpu.require("g4dn.xlarge", gpus=h200, runtime="onnxruntime-gpu 1.31.1") is h200


def test_the_runtime_is_found_by_its_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    def version(dist: str) -> str:
        if dist == "onnxruntime-gpu":
            return "1.31.1"
        raise importlib.metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert gpu.cuda_runtime() == "onnxruntime-gpu 1.31.1"
    monkeypatch.setattr(importlib.metadata, "version", lambda d: (_ for _ in ()).throw(
        importlib.metadata.PackageNotFoundError(d)))
    assert gpu.cuda_runtime() is None
