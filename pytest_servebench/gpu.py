"""Is there a GPU to serve on? Asked of the CUDA driver itself (``libcuda.so.1`` through
``ctypes``), so the answer costs no heavy import: not torch, not onnxruntime.

A server of an instance type with a GPU (``g4dn.xlarge``: an NVIDIA T4) runs on this machine's
GPU when there is one and a runtime that can use it (the ``gpu`` extra: ``onnxruntime-gpu``);
otherwise the case skips, saying which is missing. CI machines have none: GPU cases skip there.

>>> GpuProbe(devices=(), reason="no CUDA driver (libcuda.so.1 not found)").available
False
>>> GpuProbe(devices=("NVIDIA H200",), reason="").describe()
'NVIDIA H200'
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import os
from dataclasses import dataclass

from .backends.base import Unsupported

# The distributions whose ``onnxruntime`` module has the CUDA execution provider.
CUDA_RUNTIMES = ("onnxruntime-gpu",)
INSTALL_HINT = ("pip uninstall -y onnxruntime && pip install 'pytest-servebench[gpu]' (the CUDA "
                "build of ONNX Runtime; the two builds share the module name)")


class GpuUnavailable(Unsupported):
    """A case asked for a GPU server and this machine cannot serve one; the message says why
    (the test is reported as skipped with it)."""


@dataclass(frozen=True, slots=True)
class GpuProbe:
    """The GPUs the CUDA driver sees (names, in its order), or why none."""

    devices: tuple[str, ...]
    reason: str

    @property
    def available(self) -> bool:
        return bool(self.devices)

    def describe(self) -> str:
        return ", ".join(self.devices) if self.devices else f"no GPU: {self.reason}"


def _driver_probe(library: str = "libcuda.so.1") -> GpuProbe:
    try:
        cuda = ctypes.CDLL(library)
    except OSError:
        return GpuProbe((), f"no CUDA driver ({library} not found)")
    if cuda.cuInit(0) != 0:
        return GpuProbe((), "the CUDA driver found no usable device (cuInit failed)")
    count = ctypes.c_int(0)
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return GpuProbe((), "the CUDA driver sees no device"
                        + (" (CUDA_VISIBLE_DEVICES is set)"
                           if "CUDA_VISIBLE_DEVICES" in os.environ else ""))
    names = []
    for i in range(count.value):
        dev = ctypes.c_int(0)
        buf = ctypes.create_string_buffer(256)
        if cuda.cuDeviceGet(ctypes.byref(dev), i) == 0 and \
                cuda.cuDeviceGetName(buf, len(buf), dev) == 0:
            names.append(buf.value.decode(errors="replace"))
        else:
            names.append(f"GPU {i}")
    return GpuProbe(tuple(names), "")


@functools.cache
def probe() -> GpuProbe:
    """The GPUs here (asked once per process)."""
    return _driver_probe()


def cuda_runtime() -> str | None:
    """The installed distribution that gives ONNX Runtime its CUDA provider, if any."""
    for dist in CUDA_RUNTIMES:
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def require(what: str, *, gpus: GpuProbe | None = None,
            runtime: str | bool | None = True) -> GpuProbe:
    """The GPUs to serve ``what`` on, or ``GpuUnavailable`` saying what is missing: a GPU
    (the driver's answer) or a runtime that can use one (``runtime=True`` looks it up)."""
    found = gpus if gpus is not None else probe()
    if not found.available:
        raise GpuUnavailable(f"{what} needs a GPU, and this machine has none ({found.reason})")
    have = cuda_runtime() if runtime is True else runtime
    if not have:
        raise GpuUnavailable(f"{what} needs a GPU runtime: this machine has "
                             f"{found.describe()}, but ONNX Runtime's CUDA build is not "
                             f"installed: {INSTALL_HINT}")
    return found


__all__ = ["GpuProbe", "GpuUnavailable", "cuda_runtime", "probe", "require"]
