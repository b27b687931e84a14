"""What every backend is, and the parts a platform backend is built from.

A backend deploys models as Lambda functions (``function``) and as servers shaped like an EC2
instance, a SageMaker instance or a Fargate task (``server``), forces cold starts, and removes
everything it made (``close``). ``capabilities()`` says what it can measure, so a test that needs
real memory limits can skip where there are none instead of asserting on an unlimited sandbox.

The local and container backends are one platform backend (``backends.local.backend``) built
from three parts: how sandboxes start (``Sandboxes``: processes or containers), how servers start
(a ``ServerLauncher``) and where a model comes from (an ``ArtifactSource``), plus the ``Limits``
that say what a shape really gets there.

    def test_memory_sizes(servebench, servebench_backend: Backend):
        for mb in (512, 1024):
            fn = servebench_backend.function("mobilenet_v2", memory_mb=mb)
            servebench_backend.force_cold(fn)
            servebench.run(ClosedLoop(concurrency=1, requests=20), target=fn)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..functions.client import FunctionTarget
    from ..functions.sandbox import Launcher
    from ..platforms import Shape
    from ..pricebook import PriceBook
    from ..target import Client


class Unsupported(RuntimeError):
    """What a backend cannot provide on this machine or against this endpoint, and why: a GPU
    server without a GPU, a container-image function on an offline Lambda stand-in. Raised
    before anything is left deployed; a test it ends is reported as skipped with its message
    (the plugin's ``pytest_runtest_call``), not failed. Only for such limits of the place a
    run happens, never for a fault of the code under test."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can measure.

    ``memory_limits``: a sandbox or server that passes its memory size is killed, as on the
    platform (a test of out-of-memory failures needs it). ``cpu_limits``: CPU is held to the
    shape's vCPU (a comparison of sizes needs it). ``limits`` says how, or why not, in words.
    ``platforms``: what ``function`` (``lambda``) and ``server`` deploy. ``elastic``: each new
    sandbox or task brings capacity of its own, as in the cloud (a finding that throughput
    grows with users needs it); False where they all share one machine's cores."""

    platforms: tuple[str, ...]
    memory_limits: bool
    cpu_limits: bool
    limits: str
    elastic: bool = False


@dataclass(frozen=True)
class ServerTarget:
    """A running server a backend started (the handle ``server`` returns and ``stop_server``
    takes); payloads are POSTed to ``url``."""

    url: str
    name: str
    profile: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"kind": "server", "url": self.url, **self.profile}

    def client(self, *, concurrency_hint: int) -> Client:
        from ..http_client import HttpClient

        return HttpClient(self.url)


@runtime_checkable
class Backend(Protocol):
    """A place to deploy models: the local machine, containers, an AWS account."""

    @property
    def name(self) -> str:
        """``local``, ``docker``, ``aws``: recorded in every result's profile."""
        ...

    def capabilities(self) -> Capabilities: ...

    def function(self, target: str = ..., *, memory_mb: int = ..., name: str | None = ...,
                 reserved_concurrency: int | None = ..., provisioned_concurrency: int = ...,
                 keep_alive_s: float = ..., timeout_s: float = ..., parallel_init: bool = ...,
                 model_from: str = ..., handler: str | None = ...,
                 environment: dict[str, str] | None = ...) -> FunctionTarget:
        """Deploy ``target`` (a model) as a function, or return the one deployed under the
        same name, as a target to run workloads against."""
        ...

    def force_cold(self, function: FunctionTarget) -> None:
        """Retire the function's execution environments: its next invocations are cold."""
        ...

    def remove_function(self, function: FunctionTarget) -> None:
        """Delete one function now, with its environments (a module's deployments end);
        ``LookupError`` if it was not deployed here."""
        ...

    def server(self, target: str = ..., *, platform: str = ...,
               instance_type: str | None = ..., vcpu: float | None = ...,
               memory_gb: float | None = ..., workers: int = ..., threads: int | None = ...,
               slots: int | None = ..., prices: PriceBook | None = ...,
               model_from: str = ...) -> ServerTarget:
        """Start ``target``'s HTTP app shaped like an instance type (``ec2``, ``sagemaker``)
        or a task size (``fargate``: ``vcpu``, ``memory_gb``); ready when it returns."""
        ...

    def stop_server(self, target: ServerTarget) -> None:
        """Stop one server now (a task scaled in); ``LookupError`` if not started here."""
        ...

    def close(self) -> None:
        """Remove everything this backend started; safe to call twice."""
        ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...


# -- the parts of a platform backend -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Sandboxes:
    """How a platform backend's functions get sandboxes: a launcher made when the function
    platform starts (in its thread), and whether ``launch`` blocks (a container engine's API:
    the platform then calls it in an executor)."""

    launcher: Callable[[], Launcher]
    launch_blocks: bool = False


class RunningServer(Protocol):
    """One server a ``ServerLauncher`` started (a process group, a container)."""

    @property
    def url(self) -> str: ...

    @property
    def threads(self) -> int | None: ...

    @property
    def ready_s(self) -> float: ...

    def stop(self) -> None:
        """Stop it and remove what it made; safe to call again."""
        ...


class ServerLauncher(Protocol):
    """Starts servers of a model with a shape; ready (or failed, cleaned up) when it returns."""

    def start(self, target: str, *, shape: Shape, workers: int, threads: int | None,
              slots: int | None, environment: Mapping[str, str], label: str) -> RunningServer:
        ...


class Limits(Protocol):
    """What a shape really gets where sandboxes and servers run (``local.shaping.Shaper``
    for processes, ``docker.containers.DockerLimits`` for containers)."""

    @property
    def can_shape(self) -> bool:
        """Whether shapes are enforced here (CPU quota and memory limit)."""
        ...

    @property
    def reason(self) -> str:
        """How they are enforced, or why not."""
        ...

    def describe(self, shape: Shape) -> dict[str, Any]:
        """The profile keys a target of ``shape`` gets (vcpu, memory_mb, threads, shaping)."""
        ...


class ModelArtifact(Protocol):
    """A built model file and what describes it."""

    @property
    def path(self) -> Path: ...

    @property
    def meta(self) -> Mapping[str, Any]: ...


class ArtifactSource(Protocol):
    """Where a sandbox or server finds its model."""

    def packaged(self, target: str) -> dict[str, str]:
        """The environment that points at the model shipped with the code (a local path, a
        path inside the image)."""
        ...

    def artifact(self, target: str) -> ModelArtifact:
        """The model file itself, to put in the object store (``model_from="s3"``)."""
        ...


__all__ = ["ArtifactSource", "Backend", "Capabilities", "Limits", "ModelArtifact",
           "RunningServer", "Sandboxes", "ServerLauncher", "ServerTarget", "Unsupported"]
