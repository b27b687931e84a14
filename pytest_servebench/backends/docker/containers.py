"""Sandboxes and servers as containers (testcontainers' ``DockerContainer``), shaped like the
cloud by Docker's own limits: a function's memory size is its memory limit and buys CPU at
memory / 1,769 MB vCPU (a CFS quota, as the process backend sets); a server gets its instance
type's or task size's vCPU and memory. Host networking: every port is on loopback, no traffic
reaches a private-range bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ...functions.sandbox import SandboxSpec, keep_recent
from ...platforms import Shape
from ...provider import get_provider
from ...waiting import wait_for, wait_for_async
from ..local.processes import free_port, release_port
from ..local.shaping import CFS_PERIOD_US
from .engine import run_labels

RIE_PATH = "/usr/local/bin/aws-lambda-rie"


def docker_limits(shape: Shape) -> dict[str, Any]:
    """Docker's ``run`` arguments for ``shape``: a CFS quota over the period the process
    backend uses, and a memory limit without swap."""
    memory = f"{shape.memory_mb}m"
    return {"cpu_period": CFS_PERIOD_US, "cpu_quota": max(1000, int(shape.vcpu * CFS_PERIOD_US)),
            "mem_limit": memory, "memswap_limit": memory}


def describe_limits(shape: Shape) -> dict[str, Any]:
    """What a container of ``shape`` gets, in the keys the process backend's profiles use."""
    import os

    cores = len(os.sched_getaffinity(0))
    out: dict[str, Any] = {
        "vcpu": round(shape.vcpu, 3), "memory_mb": shape.memory_mb,
        "threads": shape.threads(cores), "shaped": True,
        "shaping": f"docker: --cpu-quota {docker_limits(shape)['cpu_quota']} over "
                   f"{CFS_PERIOD_US} us, --memory {shape.memory_mb}m, no swap"}
    if shape.vcpu > cores:
        out["cpu_capped_at_cores"] = cores
    return out


class DockerLimits:
    """What a shape gets in a container: Docker always enforces its CPU quota and memory
    limit, whatever this process may write to cgroups (the container backend's ``Limits``)."""

    can_shape = True
    reason = (f"docker: --cpu-quota over {CFS_PERIOD_US} us and --memory per container, "
              "no swap")

    def describe(self, shape: Shape) -> dict[str, Any]:
        return describe_limits(shape)


class ImageModels:
    """Models inside the targets' images, as in a deployed package (the container backend's
    ``ArtifactSource``); a model for the object store is the one built here."""

    def __init__(self, images: Callable[[str], Any]) -> None:
        self.images = images  # target name -> images.TargetImage (built or cached)

    def packaged(self, target: str) -> dict[str, str]:
        return {"SERVEBENCH_MODEL_PATH": self.images(target).model_path}

    def artifact(self, target: str) -> Any:
        from ..local.artifacts import built_artifact

        return built_artifact(target)


def _cgroup_files(container_id: str, v1: str, v2: str) -> list[Path]:
    """A container's cgroup file, in the v1 (``cgroupfs``, ``systemd``) and v2 layouts."""
    return [Path(f"/sys/fs/cgroup/memory/docker/{container_id}/{v1}"),
            Path(f"/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope/{v1}"),
            Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/{v2}"),
            Path(f"/sys/fs/cgroup/docker/{container_id}/{v2}")]


def _cgroup_peak_mb(container_id: str) -> float | None:
    """The container's memory high-water mark (v2 kernels from 5.19 have ``memory.peak``)."""
    for path in _cgroup_files(container_id, "memory.max_usage_in_bytes", "memory.peak"):
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text()) / 2**20
    return None


def _cgroup_oom_kills(container_id: str) -> int | None:
    """How many processes the kernel killed in the container for memory: the runtime dies,
    the emulator (the container's main process) lives on, so Docker's ``OOMKilled`` stays
    false; the cgroup's own counter tells."""
    for path in _cgroup_files(container_id, "memory.oom_control", "memory.events"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in path.read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    return None


def start_container(image: str, command: list[str], *, environment: dict[str, str],
                    shape: Shape, labels: dict[str, str], name: str) -> Any:
    """Create and start a container with host networking; a failed start removes it."""
    from testcontainers.core.container import DockerContainer

    box = DockerContainer(image, env=environment, name=name).with_command(command)
    box.with_kwargs(network_mode="host", labels=labels, init=True, **docker_limits(shape))
    try:
        box.start()
    except BaseException:
        with contextlib.suppress(Exception):
            box.stop()
        raise
    return box


class ContainerSandbox:
    """One function sandbox: a container running the emulator with the provider's runtime."""

    def __init__(self, spec: SandboxSpec, box: Any, ports: tuple[int, int]) -> None:
        self.spec, self.box = spec, box
        self.container = box.get_wrapped_container()
        self.port, self.ports = ports[0], ports
        self._recent: list[str] = []
        self._exited = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def invoke_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def attach_log(self, on_line: Callable[[str], None]) -> None:
        """Follow the container's output in a thread; lines reach ``on_line`` in the loop."""
        loop = asyncio.get_running_loop()
        keep = keep_recent(self._recent, on_line)

        def post(line: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed first
                loop.call_soon_threadsafe(keep, line)

        def follow() -> None:
            buf = b""
            try:
                for chunk in self.container.logs(stream=True, follow=True, stdout=True,
                                                 stderr=True):
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for raw in lines:
                        post(raw.decode("utf-8", "replace").rstrip("\r"))
            except Exception as exc:  # the engine dropped the stream: the sandbox is gone
                post(f"(log stream ended: {exc})")
            if buf:
                post(buf.decode("utf-8", "replace"))
            self._exited.set()

        self._reader = threading.Thread(target=follow, name=f"logs-{self.spec.sandbox_id}",
                                        daemon=True)
        self._reader.start()

    async def wait_ready(self, timeout_s: float) -> None:
        async def answers() -> bool:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.close()
            return not self._exited.is_set()  # host networking: the port could be another's

        await wait_for_async(
            answers, timeout_s=timeout_s, interval_s=0.002,
            what=f"sandbox {self.spec.sandbox_id}", retry_on=(OSError,),
            dead=lambda: "the container exited" if self._exited.is_set() else None,
            logs=lambda: "\n".join(self._recent[-40:]))

    def alive(self) -> bool:
        return not self._exited.is_set()

    def peak_memory_mb(self) -> float | None:
        return _cgroup_peak_mb(self.container.id)

    def oom_killed(self) -> bool:
        kills = _cgroup_oom_kills(self.container.id)
        if kills is not None:
            return kills > 0
        try:  # no cgroup files to read (a remote engine): Docker's flag, set when it exits
            self.container.reload()
        except Exception:
            return False
        return bool(self.container.attrs.get("State", {}).get("OOMKilled"))

    def stop(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.box.stop()
        if self._reader is not None:
            self._reader.join(10)
        release_port(*self.ports)

    def describe(self) -> dict[str, Any]:
        return {"container": self.container.short_id, "port": self.port}


class ContainerLauncher:
    """Starts each sandbox as a container of the function's image."""

    def __init__(self, *, images: Callable[[str], Any], run_id: str) -> None:
        self.images = images  # target name -> images.TargetImage (built or cached)
        self.run_id = run_id

    def describe(self, memory_mb: int) -> dict[str, Any]:
        return {"launcher": "docker", **describe_limits(Shape.for_lambda(memory_mb))}

    def launch(self, spec: SandboxSpec) -> ContainerSandbox:
        shape = Shape.for_lambda(spec.memory_mb)
        image = self.images(spec.environment["SERVEBENCH_TARGET"])
        port, api_port = free_port(), free_port()
        env = {**spec.environment, "SERVEBENCH_THREADS": str(shape.threads()),
               "SERVEBENCH_SANDBOX_ID": spec.sandbox_id, "TMPDIR": "/tmp"}
        command = [RIE_PATH, "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
                   "--runtime-api-address", f"127.0.0.1:{api_port}", "--log-level", "info",
                   "python3", "-m", get_provider().runtime_module, spec.handler]
        labels = {**run_labels(self.run_id), "servebench.function": spec.function,
                  "servebench.sandbox": spec.sandbox_id}
        try:
            box = start_container(image.tag, command, environment=env, shape=shape,
                                  labels=labels, name=f"servebench-{spec.sandbox_id}")
        except BaseException:
            release_port(port, api_port)
            raise
        return ContainerSandbox(spec, box, (port, api_port))


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ServerContainer:
    """The target's HTTP app (uvicorn) in a container shaped like a server; ready when
    ``/health`` answers 200. ``stop()`` removes it."""

    def __init__(self, image: Any, *, run_id: str, shape: Shape, workers: int = 1,
                 threads: int | None = None, slots: int | None = None,
                 environment: dict[str, str] | None = None, start_timeout_s: float = 120.0,
                 label: str = "server") -> None:
        self.port = free_port()
        self.threads = threads or shape.threads()
        env = {**(environment or {}), "SERVEBENCH_TARGET": image.target,
               "SERVEBENCH_THREADS": str(self.threads)}
        if slots:
            env["SERVEBENCH_INFERENCE_SLOTS"] = str(slots)
        provider = get_provider()
        command = ["python3", "-m", "uvicorn", "--factory", provider.app,
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
                   "--log-level", "warning", "--no-access-log"]
        if provider.http_protocol:  # request heads get a deadline (slow clients), as under
            command += ["--http", provider.http_protocol]  # servebench serve
        labels = {**run_labels(run_id), "servebench.server": label}
        self.name = f"servebench-{label}-{self.port}"
        t0 = time.perf_counter()
        try:
            self.box = start_container(image.tag, command, environment=env, shape=shape,
                                       labels=labels, name=self.name)
        except BaseException:
            release_port(self.port)
            raise
        try:
            self._wait_healthy(start_timeout_s - (time.perf_counter() - t0))
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.perf_counter() - t0

    def _wait_healthy(self, timeout_s: float) -> None:
        health = f"http://127.0.0.1:{self.port}/health"
        container = self.box.get_wrapped_container()

        def exited() -> str | None:
            container.reload()
            if container.status in ("created", "running"):
                return None
            return f"the container exited ({container.status})"

        wait_for(lambda: _health(health), timeout_s=max(0.0, timeout_s), interval_s=0.05,
                 what=f"server container {self.name}",
                 dead=exited,
                 logs=lambda: container.logs(tail=40).decode("utf-8", "replace"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/predict"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.box.stop()
        release_port(self.port)


class ContainerServers:
    """Starts servers as containers of the target's image (the container backend's
    ``ServerLauncher``)."""

    def __init__(self, *, images: Callable[[str], Any], run_id: str) -> None:
        self.images, self.run_id = images, run_id

    def start(self, target: str, *, shape: Shape, workers: int, threads: int | None,
              slots: int | None, environment: Mapping[str, str], label: str) -> ServerContainer:
        return ServerContainer(self.images(target), run_id=self.run_id, shape=shape,
                               workers=workers, threads=threads, slots=slots,
                               environment=dict(environment), label=label)
