"""One backend on this machine's platform, built from parts: the local Lambda platform
(``functions.api.PlatformServer``) whose sandboxes come from ``Sandboxes``, servers from a
``ServerLauncher``, models from an ``ArtifactSource``, and moto's S3 server on loopback as the
object store. The local backend (processes) and the container backend (containers) are two
constructions of it (``backends.local.LocalBackend``, ``backends.docker.DockerBackend``); what
differs between them is only what they are built from (``backends.base``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ...platforms import PLATFORMS, FargateProfile, InstanceProfile, Shape, server_profile
from ..base import (
    ArtifactSource,
    Capabilities,
    Limits,
    RunningServer,
    Sandboxes,
    ServerLauncher,
    ServerTarget,
)
from .processes import interrupt_on_sigterm, restore_sigterm, tagged_processes
from .server import served_by
from .sweep import Swept, sweep_dead_runs

if TYPE_CHECKING:
    from ...cost import ServerBill
    from ...functions.api import PlatformServer
    from ...functions.client import FunctionTarget
    from ...gpu import GpuProbe
    from ...pricebook import PriceBook
    from ..base import Backend
    from .storage import ObjectStore

log = logging.getLogger("pytest_servebench.backends.local")

# Every sandbox gets these from the platform (its role's credentials, its region), as on Lambda,
# which refuses them in a function's environment. The object store's environment() carries them
# for code outside functions; function() leaves them out rather than refuse it.
PLATFORM_SUPPLIED = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_DEFAULT_REGION", "AWS_REGION")


class PlatformBackend:
    """Functions on the local Lambda platform and servers on this machine, each started on
    demand; ``close()`` stops everything they started, then runs ``on_close`` (a container
    engine's own cleanup), then kills any process still carrying the run's tag."""

    def __init__(self, name: str, *, owner: str, sandboxes: Sandboxes,
                 servers: ServerLauncher, artifacts: ArtifactSource, limits: Limits,
                 on_close: Sequence[Callable[[], None]] = ()) -> None:
        # Runs killed outright (kill -9, a crashed xdist worker) left folders and cgroups that
        # only a later run can remove: one listing of the temp dir, /proc and the cgroups.
        self.swept_leftovers: Swept = sweep_dead_runs()
        log.debug("servebench sweep of dead runs: %d processes, %d temp folders, %d cgroups",
                  self.swept_leftovers.processes, self.swept_leftovers.folders,
                  self.swept_leftovers.cgroups)
        self._name = name
        self.owner = owner
        self.sandboxes, self.servers, self.artifacts = sandboxes, servers, artifacts
        self.limits = limits
        self._on_close = list(on_close)
        self._platform: PlatformServer | None = None
        self._store: ObjectStore | None = None
        self._running: list[RunningServer] = []
        # Servers by url until stopped: the handle, and its hourly price and what was priced
        # (from the price book the caller gave server(), so a custom book is honoured).
        self._launched: dict[str, tuple[ServerTarget, float, str]] = {}
        self.bills: list[ServerBill] = []  # servers stopped: launch to termination
        self._sigterm = interrupt_on_sigterm()  # SIGTERM cleans up as Ctrl-C does

    @property
    def name(self) -> str:
        return self._name

    def capabilities(self) -> Capabilities:
        return Capabilities(platforms=PLATFORMS, memory_limits=self.limits.can_shape,
                            cpu_limits=self.limits.can_shape, limits=self.limits.reason)

    # -- functions -------------------------------------------------------------------------
    @property
    def platform(self) -> PlatformServer:
        """The local function platform (``functions.api.PlatformServer``), started on demand.
        Its credentials are made for this run (``platform.credentials``); the targets
        ``function()`` returns sign with them."""
        if self._platform is None:
            from ...functions.api import PlatformServer

            self._platform = PlatformServer(
                self.sandboxes.launcher,
                launch_in_executor=self.sandboxes.launch_blocks).start()
        return self._platform

    @property
    def object_store(self) -> ObjectStore:
        """moto's S3 server on loopback (``storage.ObjectStore``), started on demand."""
        if self._store is None:
            from .storage import ObjectStore

            self._store = ObjectStore(owner=self.owner)
        return self._store

    def _model_environment(self, target: str, model_from: str) -> dict[str, str]:
        """Where a sandbox or server finds its model: shipped with it (``package``) or in
        the object store (``s3``, downloaded at start)."""
        if model_from == "package":
            return self.artifacts.packaged(target)
        if model_from != "s3":
            raise ValueError(f"model_from is 'package' or 's3', not {model_from!r}")
        art = self.artifacts.artifact(target)
        url = self.object_store.upload(art.path, "servebench-models", art.path.name)
        return {"SERVEBENCH_MODEL_URL": url, "SERVEBENCH_MODEL_META": json.dumps(art.meta),
                **self.object_store.environment()}

    def function(self, target: str = "mobilenet_v2", *, memory_mb: int = 1024,
                 name: str | None = None, reserved_concurrency: int | None = None,
                 provisioned_concurrency: int = 0, keep_alive_s: float = 300.0,
                 timeout_s: float = 30.0, parallel_init: bool = False,
                 model_from: str = "package", handler: str | None = None,
                 environment: dict[str, str] | None = None) -> FunctionTarget:
        """Deploy ``target`` as a function (or update it) and return it as a target.

        ``model_from="package"`` ships the model with the function; ``"s3"`` puts it in the
        local object store and the function downloads it at init (study 004's setup, where
        ``parallel_init`` overlaps the download with the library imports). ``handler`` picks
        another entry point, e.g. ``targets.router.handler`` (study 002's hybrid front).
        ``environment`` follows Lambda's rules, but credentials and region in it (the object
        store's ``environment()``) are left out: the sandbox gets the platform's."""
        from ...functions.client import FunctionTarget
        from ...functions.platform import FunctionConfig

        shape = Shape.for_lambda(memory_mb)  # Lambda's bounds before anything is built
        model_env = {k: v for k, v in {**self._model_environment(target, model_from),
                                       **(environment or {})}.items()
                     if k not in PLATFORM_SUPPLIED}
        fname = name or (f"{target}-{memory_mb}mb" + ("-s3" if model_from == "s3" else "")
                         + ("-parallel" if parallel_init else ""))
        config = FunctionConfig(
            name=fname, target=target, memory_mb=memory_mb, timeout_s=timeout_s,
            reserved_concurrency=reserved_concurrency,
            provisioned_concurrency=provisioned_concurrency, keep_alive_s=keep_alive_s,
            parallel_init=parallel_init, handler=handler or "",
            environment=model_env)
        srv = self.platform
        srv.deploy(config)
        profile = {"backend": self.name, "target": target, "memory_mb": memory_mb,
                   "arch": "x86_64", "parallel_init": parallel_init, "model_from": model_from,
                   "reserved_concurrency": reserved_concurrency,
                   "provisioned_concurrency": provisioned_concurrency,
                   **self.limits.describe(shape)}
        return FunctionTarget(srv.endpoint_url, fname, name=f"lambda:{fname}", profile=profile,
                              credentials=srv.credentials)

    def force_cold(self, function: FunctionTarget) -> None:
        """Retire the function's sandboxes: its next invocations are cold starts."""
        self.platform.force_cold(function.function)

    def remove_function(self, function: FunctionTarget) -> None:
        """Delete the function: its sandboxes stop now (a busy one when its invocation ends)
        and a later ``function()`` of the same name deploys it afresh."""
        if self._platform is None:
            raise LookupError(f"{function.function!r} was not deployed here")
        self._platform.remove(function.function)

    # -- servers ---------------------------------------------------------------------------
    def server(self, target: str = "mobilenet_v2", *, platform: str = "ec2",
               instance_type: str | None = "c5.large", vcpu: float | None = None,
               memory_gb: float | None = None, workers: int = 1, threads: int | None = None,
               slots: int | None = None, prices: PriceBook | None = None,
               model_from: str = "package") -> ServerTarget:
        """Start ``target``'s HTTP app shaped like ``instance_type`` (EC2; SageMaker's
        ``ml.*``, a plain name standing for its ``ml.`` twin) or like a Fargate task of
        ``vcpu`` and ``memory_gb`` (a size Fargate offers). ``model_from="s3"``: the server
        downloads its model from the local object store as it starts (study 001)."""
        chosen = server_profile(platform, instance_type=instance_type, vcpu=vcpu,
                                memory_gb=memory_gb, book=prices)
        profile: dict[str, Any] = {"backend": self.name, "platform": platform,
                                   "target": target}
        if isinstance(chosen, FargateProfile):
            profile.update(vcpu=vcpu, memory_gb=memory_gb, arch=chosen.arch)
            size = f"{chosen.vcpu:g}vCPU-{chosen.memory_gb:g}GB"
        else:
            profile.update(instance_type=chosen.instance_type, vcpu=chosen.vcpu,
                           memory_gb=chosen.memory_gib, arch=chosen.arch)
            if chosen.arch != "x86_64" and os.uname().machine == "x86_64":
                profile["arch_note"] = (f"{chosen.instance_type} is {chosen.arch}; it runs as "
                                        "x86_64 here, shaped to its vCPU and memory only")
            size = chosen.instance_type
        # A GPU instance serves on this machine's GPU (checked before anything starts); every
        # other server is told to stay on the CPU, so a c5.large never borrows a GPU here.
        device = {"SERVEBENCH_DEVICE": "cpu"}
        if isinstance(chosen, InstanceProfile) and chosen.gpu:
            here = self._gpu_for(chosen)
            device["SERVEBENCH_DEVICE"] = "cuda"
            profile.update(gpu=chosen.gpu, gpu_here=here.describe())
            if chosen.gpu not in here.describe():
                profile["gpu_note"] = (f"{chosen.instance_type} has an NVIDIA {chosen.gpu}; it "
                                       f"runs on this machine's {here.describe()}")
        shape = chosen.shape
        environment = {**self._model_environment(target, model_from), **device}
        profile["launched_unix"] = round(time.time(), 3)  # billed from here
        running = self.servers.start(target, shape=shape, workers=workers, threads=threads,
                                     slots=slots, environment=environment,
                                     label=f"{platform}-{target}")
        self._running.append(running)
        profile.update(self.limits.describe(shape))
        profile.update(workers=workers, threads=running.threads, slots=slots or 1,
                       ready_s=round(running.ready_s, 3), model_from=model_from)
        profile.update(served_by(running.url.rsplit("/", 1)[0]))
        got = ServerTarget(running.url, name=f"{platform}:{size}:{target}", profile=profile)
        from ...pricebook import load_price_book

        self._launched[got.url] = (got, chosen.usd_per_hour(prices or load_price_book()),
                                   chosen.basis())
        return got

    def _bill(self, url: str) -> None:
        """The server at ``url`` was just stopped: its bill, launch to now."""
        from ...cost import ServerBill

        launched = self._launched.pop(url, None)
        if launched is None:
            return
        target, hourly, basis = launched
        self.bills.append(ServerBill(target.name, str(target.profile["platform"]), basis,
                                     hourly, float(target.profile["launched_unix"]),
                                     time.time()))

    def _gpu_for(self, chosen: InstanceProfile) -> GpuProbe:
        """This machine's GPU for a server of ``chosen`` (a GPU instance type), or
        ``GpuUnavailable`` saying what is missing."""
        from ...gpu import GpuUnavailable, require

        what = f"{chosen.instance_type} (an NVIDIA {chosen.gpu})"
        if self.name != "local":
            raise GpuUnavailable(f"{what} needs a GPU, and the {self.name} backend does not "
                                 "pass one into its containers: run GPU cases on the local "
                                 "backend")
        return require(what)

    def stop_server(self, target: ServerTarget) -> None:
        """Stop one server now (a task scaled in) rather than at the end of the session."""
        for running in list(self._running):
            if running.url == target.url:
                running.stop()
                self._running.remove(running)
                self._bill(running.url)
                return
        raise LookupError(f"{target.name} was not started by this backend")

    # -- teardown --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every server and sandbox this backend started, then run ``on_close``, then
        kill any process still carrying this run's tag (the net under the net)."""
        if self._sigterm:  # a SIGTERM from here on kills at once rather than cut this short
            self._sigterm = False
            restore_sigterm()
        stoppers: list[Callable[[], None]] = [s.stop for s in self._running]
        stoppers += [functools.partial(self._bill, s.url) for s in self._running]
        stoppers += [x.stop for x in (self._platform, self._store) if x is not None]
        stoppers += self._on_close
        self._running, self._platform, self._store, self._on_close = [], None, None, []
        errors: list[BaseException] = []
        for stop in stoppers:
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        for pid in tagged_processes(self.owner):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if errors:
            raise errors[0]

    def __enter__(self) -> PlatformBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if TYPE_CHECKING:
    def _is_a_backend(backend: PlatformBackend) -> Backend:  # mypy checks it against the seam
        return backend


__all__ = ["PLATFORM_SUPPLIED", "PlatformBackend"]
