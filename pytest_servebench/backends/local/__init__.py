"""The local backend, the embedded default: everything runs on this machine as processes, with
no Docker and no cloud.

- ``function(...)``: a function on the local Lambda platform (the official Runtime Interface
  Emulator per sandbox, Lambda's Invoke API on loopback).
- ``server(...)``: the target's HTTP app under uvicorn, shaped like an EC2 instance type, a
  Fargate task size or a SageMaker instance.

Both return ``Target`` objects for ``servebench.run``. ``close()`` stops everything they started;
the container backend swaps the process launchers for container ones and keeps the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any

from ...functions.client import FunctionTarget
from .processes import interrupt_on_sigterm, new_owner, restore_sigterm, tagged_processes
from .server import ServerProcess, ServerTarget
from .shaping import Shape, Shaper
from .sweep import sweep_dead_runs

log = logging.getLogger(__name__)

SERVER_PLATFORMS = ("ec2", "fargate", "sagemaker")
# Every sandbox gets these from the platform (its role's credentials, its region), as on Lambda,
# which refuses them in a function's environment. The object store's environment() carries them
# for code outside functions; function() leaves them out rather than refuse it.
PLATFORM_SUPPLIED = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_DEFAULT_REGION", "AWS_REGION")


def model_environment(target: str) -> dict[str, str]:
    """Build (or find in the cache) the target's artifact here, so that sandboxes and servers
    only load it, as a deployed package would."""
    return {"SERVEBENCH_MODEL_PATH": str(_artifact(target).path)}


def _artifact(target: str) -> Any:
    from targets.build import ensure
    from targets.registry import get

    spec = get(target)
    return ensure(spec.model, spec.runtime)


class LocalBackend:
    name = "local"

    def __init__(self, *, shaper: Shaper | None = None) -> None:
        # Runs killed outright (kill -9, a crashed xdist worker) left folders and cgroups that
        # only a later run can remove: one listing of the temp dir, /proc and the cgroups.
        self.swept_leftovers = sweep_dead_runs()
        log.debug("servebench sweep of dead runs: %d processes, %d temp folders, %d cgroups",
                  self.swept_leftovers.processes, self.swept_leftovers.folders,
                  self.swept_leftovers.cgroups)
        self.shaper = shaper or Shaper()
        self.owner = new_owner()
        self._sigterm = interrupt_on_sigterm()  # SIGTERM cleans up as Ctrl-C does
        self._platform: Any = None
        self._store: Any = None
        self._servers: list[Any] = []
        self._functions: dict[tuple[Any, ...], FunctionTarget] = {}

    # -- functions -------------------------------------------------------------------------
    @property
    def platform(self) -> Any:
        """The local function platform (``functions.api.PlatformServer``), started on demand.
        Its credentials are made for this run (``platform.credentials``); the targets
        ``function()`` returns sign with them."""
        if self._platform is None:
            from ...functions.api import PlatformServer

            factory, options = self._launcher()
            self._platform = PlatformServer(factory, **options).start()
        return self._platform

    def _launcher(self) -> tuple[Any, dict[str, Any]]:
        """What starts sandboxes here, and the platform's options for it."""
        from .functions import ProcessLauncher

        shaper, owner = self.shaper, self.owner
        return (lambda: ProcessLauncher(owner=owner, shaper=shaper)), {}

    def _describe_shape(self, shape: Shape) -> dict[str, Any]:
        return self.shaper.describe(shape)

    @property
    def object_store(self) -> Any:
        """moto's S3 server on loopback (``storage.ObjectStore``), started on demand."""
        if self._store is None:
            from .storage import ObjectStore

            self._store = ObjectStore(owner=self.owner)
        return self._store

    def _model_environment(self, target: str, model_from: str) -> dict[str, str]:
        """Where a sandbox or server finds its model: in its package (a local path) or in the
        object store (downloaded at start)."""
        if model_from == "package":
            return model_environment(target)
        if model_from != "s3":
            raise ValueError(f"model_from is 'package' or 's3', not {model_from!r}")
        import json

        art = _artifact(target)
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
        from ...functions.platform import DEFAULT_HANDLER, FunctionConfig

        model_env = {k: v for k, v in {**self._model_environment(target, model_from),
                                       **(environment or {})}.items()
                     if k not in PLATFORM_SUPPLIED}
        fname = name or (f"{target}-{memory_mb}mb" + ("-s3" if model_from == "s3" else "")
                         + ("-parallel" if parallel_init else ""))
        config = FunctionConfig(
            name=fname, target=target, memory_mb=memory_mb, timeout_s=timeout_s,
            reserved_concurrency=reserved_concurrency,
            provisioned_concurrency=provisioned_concurrency, keep_alive_s=keep_alive_s,
            parallel_init=parallel_init, handler=handler or DEFAULT_HANDLER,
            environment=model_env)
        srv = self.platform
        srv.deploy(config)
        shape = Shape.for_lambda(memory_mb)
        profile = {"backend": self.name, "target": target, "memory_mb": memory_mb,
                   "arch": "x86_64", "parallel_init": parallel_init, "model_from": model_from,
                   "reserved_concurrency": reserved_concurrency,
                   "provisioned_concurrency": provisioned_concurrency,
                   **self._describe_shape(shape)}
        return FunctionTarget(srv.endpoint_url, fname, name=f"lambda:{fname}", profile=profile,
                              credentials=srv.credentials)

    def force_cold(self, function: FunctionTarget) -> None:
        """Retire the function's sandboxes: its next invocations are cold starts."""
        self.platform.force_cold(function.function)

    # -- servers ---------------------------------------------------------------------------
    def server(self, target: str = "mobilenet_v2", *, platform: str = "ec2",
               instance_type: str | None = "c5.large", vcpu: float | None = None,
               memory_gb: float | None = None, workers: int = 1, threads: int | None = None,
               slots: int | None = None, prices: Any = None,
               model_from: str = "package") -> ServerTarget:
        """Start ``target``'s HTTP app shaped like ``instance_type`` (EC2, SageMaker ``ml.*``)
        or like a Fargate task of ``vcpu`` and ``memory_gb``. ``model_from="s3"``: the server
        downloads its model from the local object store as it starts (study 001)."""
        if platform not in SERVER_PLATFORMS:
            raise ValueError(f"server platform is one of {SERVER_PLATFORMS}, not {platform!r}")
        profile: dict[str, Any] = {"backend": self.name, "platform": platform,
                                   "target": target}
        if platform == "fargate":
            if vcpu is None or memory_gb is None:
                raise ValueError("a Fargate server needs vcpu= and memory_gb=")
            profile.update(vcpu=vcpu, memory_gb=memory_gb, arch="x86_64")
        else:
            from ...pricebook import load_price_book

            if instance_type is None:
                raise ValueError(f"an {platform} server needs instance_type=")
            if platform == "sagemaker" and not instance_type.startswith("ml."):
                instance_type = "ml." + instance_type
            inst = (prices or load_price_book()).instance(instance_type)
            vcpu, memory_gb = inst.vcpu, inst.memory_gib
            profile.update(instance_type=instance_type, vcpu=vcpu, memory_gb=memory_gb,
                           arch=inst.arch)
            if inst.arch != "x86_64" and os.uname().machine == "x86_64":
                profile["arch_note"] = (f"{instance_type} is {inst.arch}; it runs as x86_64 "
                                        "here, shaped to its vCPU and memory only")
        shape = Shape(vcpu=float(vcpu), memory_mb=int(float(memory_gb) * 1024))
        proc = self._start_server(target, shape=shape, workers=workers, threads=threads,
                                  slots=slots,
                                  environment=self._model_environment(target, model_from),
                                  label=f"{platform}-{target}")
        self._servers.append(proc)
        profile.update(self._describe_shape(shape))
        profile.update(workers=workers, threads=proc.threads, slots=slots or 1,
                       ready_s=round(proc.ready_s, 3), model_from=model_from)
        size = (f"{vcpu:g}vCPU-{memory_gb:g}GB" if platform == "fargate"
                else str(instance_type))
        return ServerTarget(proc.url, name=f"{platform}:{size}:{target}", profile=profile)

    def _start_server(self, target: str, *, shape: Shape, workers: int, threads: int | None,
                      slots: int | None, environment: dict[str, str], label: str) -> Any:
        """Start one server (``.url``, ``.threads``, ``.ready_s``, ``.stop()``)."""
        return ServerProcess(target, owner=self.owner, shape=shape, shaper=self.shaper,
                             workers=workers, threads=threads, slots=slots,
                             environment=environment, label=label)

    def stop_server(self, target: ServerTarget) -> None:
        """Stop one server now (a task scaled in) rather than at the end of the session."""
        for proc in list(self._servers):
            if proc.url == target.url:
                proc.stop()
                self._servers.remove(proc)
                return
        raise LookupError(f"{target.name} was not started by this backend")

    # -- teardown --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every server and sandbox this backend started, then kill any process still
        carrying this run's tag (the net under the net)."""
        if self._sigterm:  # a SIGTERM from here on kills at once rather than cut this short
            self._sigterm = False
            restore_sigterm()
        stoppers = [p.stop for p in self._servers]
        stoppers += [x.stop for x in (self._platform, self._store) if x is not None]
        self._servers, self._platform, self._store = [], None, None
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

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
