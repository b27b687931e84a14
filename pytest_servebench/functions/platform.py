"""Functions and their sandboxes: Lambda's scaling rules on one machine.

- An invocation takes an idle warm sandbox of the function if there is one (the most recently
  used, as Lambda tends to), else starts a new one: a cold start.
- Reserved concurrency caps the sandboxes busy at once; past it an invocation is throttled
  (``TooManyRequestsException``, HTTP 429), never queued.
- Idle sandboxes are reaped after the keep-alive time; provisioned ones stay, initialised ahead.
- Changing a function's configuration retires its sandboxes, so the next invocations are cold:
  how SeBS forces cold starts on AWS, and how a cold-start experiment forces them here.
- A published version is a snapshot of the code and configuration with sandboxes of its own
  (provisioned concurrency is set per version); reserved concurrency caps the function's
  invocations across all its versions.
- A function runs a target of the installed repo, or an uploaded package (``code``): the folder
  its zip was unpacked into is then its sandboxes' task root (``code.CodeStore``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .code import CodePackage, CodeStore
from .sandbox import LaunchedSandbox, Launcher, Outcome, Sandbox, SandboxSpec
from .sigv4 import Credentials

log = logging.getLogger("servebench.functions")
LATEST = "$LATEST"
ARCHITECTURES = ("x86_64", "arm64")
ACCOUNT = "000000000000"
# What Lambda checks in a function's environment (CreateFunction, UpdateFunctionConfiguration).
ENVIRONMENT_KEY = re.compile(r"[a-zA-Z][a-zA-Z0-9_]+")
ENVIRONMENT_MAX_BYTES = 4096
RESERVED_ENVIRONMENT = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})


def check_environment(environment: Mapping[str, str]) -> None:
    """Raise ``ValueError`` unless Lambda would accept ``environment`` as a function's
    variables: string values, keys like ``[a-zA-Z]([a-zA-Z0-9_])+``, none of the keys Lambda sets
    itself, 4 KB in all."""
    if not isinstance(environment, Mapping):
        raise ValueError("Environment.Variables must be a map of names to strings")
    size = 0
    for key, value in environment.items():
        if key in RESERVED_ENVIRONMENT:
            raise ValueError(f"Lambda was unable to configure your environment variables "
                             f"because the environment variables you have provided contains "
                             f"reserved keys that are currently not supported for "
                             f"modification. Reserved keys used in this request: {key}")
        if not isinstance(key, str) or ENVIRONMENT_KEY.fullmatch(key) is None:
            shown = key[:64] if isinstance(key, str) else type(key).__name__
            raise ValueError(f"environment variable name {shown!r} does not match "
                             "[a-zA-Z]([a-zA-Z0-9_])+")
        if not isinstance(value, str):
            raise ValueError(f"environment variable {key} must be a string, not "
                             f"{type(value).__name__}")
        size += len(key.encode()) + len(value.encode())
    if size > ENVIRONMENT_MAX_BYTES:
        raise ValueError(f"Lambda was unable to configure your environment variables because "
                         f"the environment variables you have provided exceeded the 4KB limit. "
                         f"Size: {size} bytes")


def default_handler() -> str:
    """The handler a function of a model runs unless told otherwise: the model provider's."""
    from ..provider import get_provider

    return get_provider().handler


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """One function. ``target`` names the model it serves (``provider``); a function made
    through the API (CreateFunction) runs its uploaded ``code`` instead, as it is."""

    name: str
    target: str = "mobilenet_v2"
    memory_mb: int = 1024
    timeout_s: float = 30.0
    reserved_concurrency: int | None = None
    provisioned_concurrency: int = 0
    keep_alive_s: float = 300.0
    parallel_init: bool = False
    handler: str = ""  # empty: the model provider's handler (``default_handler()``)
    environment: Mapping[str, str] = field(default_factory=dict)
    code: CodePackage | None = None
    runtime: str = "python3.11"
    architecture: str = "x86_64"  # what the function asked for; sandboxes run on this machine
    role: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not self.handler:
            object.__setattr__(self, "handler", default_handler())
        if not 128 <= self.memory_mb <= 10240:
            raise ValueError(f"Lambda memory is 128..10240 MB, not {self.memory_mb}")
        if self.reserved_concurrency is not None and self.reserved_concurrency < 0:
            raise ValueError("reserved concurrency cannot be negative")
        if self.provisioned_concurrency < 0:
            raise ValueError("provisioned concurrency cannot be negative")
        if (self.reserved_concurrency is not None
                and self.provisioned_concurrency > self.reserved_concurrency):
            raise ValueError("provisioned concurrency cannot pass reserved concurrency")
        if not 1 <= self.timeout_s <= 900:
            raise ValueError(f"Lambda timeout is 1..900 s, not {self.timeout_s:g}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"Lambda architectures are {' and '.join(ARCHITECTURES)}, not "
                             f"{str(self.architecture)[:40]!r}")
        check_environment(self.environment)

    def arn(self, region: str = "us-east-1", version: str | None = None) -> str:
        arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{self.name}"
        return arn if version is None or version == LATEST else f"{arn}:{version}"


def split_name(name: str) -> tuple[str, str | None]:
    """A FunctionName as Lambda takes it (a name, ``name:qualifier``, a full or partial ARN with
    or without a qualifier) as the name and the qualifier (None when it carries none)."""
    rest = name.rsplit(":function:", 1)[-1]
    base, sep, qualifier = rest.partition(":")
    return base, (qualifier if sep else None)


class Throttled(Exception):
    """Lambda's TooManyRequestsException."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownFunction(LookupError):
    pass


class NotActive(Exception):
    """Lambda's ResourceConflictException for a function that cannot run yet (Pending)."""


@dataclass(frozen=True, slots=True)
class Invocation:
    outcome: Outcome
    cold_start: bool
    queued_s: float


def _stop_when_launched(done: asyncio.Future[LaunchedSandbox]) -> None:
    """Stop a sandbox whose launch landed after its caller gave up (in a thread of its own:
    the loop, and its executor, may be closing by then)."""
    if done.cancelled() or done.exception() is not None:
        return
    import threading

    threading.Thread(target=done.result().stop, name="servebench-orphan-stop").start()


class Function:
    """A function's ``$LATEST`` (``latest`` None, ``versions`` its published versions) or one
    published version of it (``latest`` the function it was published from)."""

    def __init__(self, config: FunctionConfig, platform: FunctionPlatform, *,
                 version: str = LATEST, latest: Function | None = None) -> None:
        self.config = config
        self.platform = platform
        self.version, self.latest = version, latest
        self.versions: dict[str, Function] = {}
        self.published = 0  # version numbers are never reused, as on Lambda
        self.revision = 0
        self.sandboxes: dict[str, Sandbox] = {}
        self.idle: list[Sandbox] = []
        self.busy = 0
        self.starts = 0
        self.throttles = 0
        # What the control plane reports (GetFunction): Lambda's State and LastUpdateStatus.
        self.lambda_state = "Active"  # Pending while its package unpacks
        self.updating = False
        self.deleted = False
        self.tags: dict[str, str] = {}
        self.revision_id = str(uuid.uuid4())
        self.last_modified = time.time()
        self.provisioning: asyncio.Task[None] | None = None
        self.provisioning_error: str | None = None

    @property
    def family(self) -> Function:
        """The function's ``$LATEST``: reserved concurrency and tags are the function's."""
        return self.latest or self

    def family_busy(self) -> int:
        fam = self.family
        return fam.busy + sum(v.busy for v in fam.versions.values())

    def touched(self) -> None:
        self.revision_id = str(uuid.uuid4())
        self.last_modified = time.time()

    # -- scaling ---------------------------------------------------------------------------
    def _spec(self) -> SandboxSpec:
        c = self.config
        env = {**self.platform.base_environment(c, version=self.version), **c.environment}
        return SandboxSpec(sandbox_id=Sandbox.new_id(), function=c.name, handler=c.handler,
                           memory_mb=c.memory_mb, timeout_s=c.timeout_s, environment=env,
                           task_root=str(c.code.root) if c.code is not None else None)

    async def _new_sandbox(self, *, provisioned: bool = False) -> Sandbox:
        spec = self._spec()
        launcher = self.platform.launcher
        loop = asyncio.get_running_loop()
        if self.platform.launch_in_executor:  # launchers that block (a container engine's API)
            # Shielded: a caller cancelled while the launch runs must not drop what it made.
            pending = loop.run_in_executor(None, launcher.launch, spec)
            try:
                launched = await asyncio.shield(pending)
            except asyncio.CancelledError:
                pending.add_done_callback(_stop_when_launched)
                raise
        else:  # process launchers fork here: the children's death signal is tied to this thread
            launched = launcher.launch(spec)
        try:
            sandbox = Sandbox(spec, launched, revision=self.revision, provisioned=provisioned)
        except BaseException:  # attaching to its log failed: stop what was launched
            await loop.run_in_executor(None, launched.stop)
            raise
        self.sandboxes[sandbox.id] = sandbox
        self.starts += 1
        try:
            await sandbox.start(self.platform.start_timeout_s)
        except BaseException:
            self.sandboxes.pop(sandbox.id, None)
            await sandbox.close()
            raise
        return sandbox

    def _take_idle(self) -> Sandbox | None:
        # Provisioned sandboxes first (Lambda spills to on-demand only past them), then the
        # most recently used.
        for i in range(len(self.idle) - 1, -1, -1):
            if self.idle[i].provisioned:
                return self.idle.pop(i)
        return self.idle.pop() if self.idle else None

    async def invoke(self, event: bytes) -> Invocation:
        request_id = str(uuid.uuid4())
        t0 = time.perf_counter()
        if self.deleted:
            raise UnknownFunction(f"Function not found: {self.config.arn(version=self.version)}")
        if self.lambda_state != "Active":
            raise NotActive("The operation cannot be performed at this time. The function is "
                            f"currently in the following state: {self.lambda_state}")
        # Concurrency is invocations in flight: the cap holds whether or not a sandbox is idle,
        # and across the function's versions.
        cap = self.family.config.reserved_concurrency
        if cap is not None and self.family_busy() >= cap:
            self.throttles += 1
            raise Throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
        if self.platform.busy_total() >= self.platform.account_concurrency:
            self.throttles += 1
            raise Throttled("ConcurrentInvocationLimitExceeded")
        sandbox = self._take_idle()
        self.busy += 1
        try:
            if sandbox is None:
                sandbox = await self._new_sandbox()
            queued_s = time.perf_counter() - t0
            cold = not sandbox.initialized
            outcome = await sandbox.invoke(event, request_id=request_id)
        finally:
            self.busy -= 1
        self._release(sandbox)
        return Invocation(outcome=outcome, cold_start=cold and outcome.report.cold_start,
                          queued_s=queued_s)

    def _release(self, sandbox: Sandbox) -> None:
        if (sandbox.revision == self.revision and not sandbox.broken and not self.deleted
                and sandbox.launched.alive()):
            self.idle.append(sandbox)
        else:
            self._retire(sandbox)

    def _retire(self, sandbox: Sandbox) -> None:
        self.sandboxes.pop(sandbox.id, None)
        with contextlib.suppress(ValueError):
            self.idle.remove(sandbox)
        self.platform.spawn_task(sandbox.close())

    def reap(self, now: float) -> int:
        stale = [s for s in self.idle
                 if not s.provisioned and now - s.last_used > self.config.keep_alive_s]
        for s in stale:
            self._retire(s)
        return len(stale)

    async def provision(self) -> None:
        """Bring provisioned sandboxes up to the configured count, initialised ahead."""
        have = sum(1 for s in self.sandboxes.values() if s.provisioned)
        want = self.config.provisioned_concurrency - have
        if want <= 0:
            return

        async def one() -> None:
            sandbox = await self._new_sandbox(provisioned=True)
            self.busy += 1
            try:
                await sandbox.invoke(json.dumps({"servebench": "warmup"}).encode(),
                                     request_id=str(uuid.uuid4()))
            finally:
                self.busy -= 1
            self._release(sandbox)

        await asyncio.gather(*(one() for _ in range(want)))

    def start_provisioning(self) -> None:
        """Provision in the background, as PutProvisionedConcurrencyConfig does: the status
        is IN_PROGRESS until the sandboxes are up (READY) or one failed to start (FAILED)."""
        self.provisioning_error = None

        async def run() -> None:
            try:
                await self.provision()
            except Exception as exc:
                log.warning("provisioning %s:%s failed", self.config.name, self.version,
                            exc_info=True)
                self.provisioning_error = (f"{type(exc).__name__}: a provisioned sandbox did "
                                           "not start; see the platform's log")

        self.provisioning = asyncio.get_running_loop().create_task(run())
        self.platform.track(self.provisioning)

    def provisioned_status(self) -> str:
        if self.provisioning_error is not None:
            return "FAILED"
        if self.provisioning is not None and not self.provisioning.done():
            return "IN_PROGRESS"
        return "READY"

    def deprovision(self) -> None:
        """No provisioned sandboxes any more: idle ones go, busy ones go when they finish."""
        self.config = dataclasses.replace(self.config, provisioned_concurrency=0)
        if self.provisioning is not None:
            self.provisioning.cancel()
        self.provisioning = self.provisioning_error = None
        for s in [s for s in self.idle if s.provisioned]:
            self._retire(s)
        for s in self.sandboxes.values():
            s.provisioned = False  # reaped after keep-alive like any other

    async def update(self, **changes: Any) -> FunctionConfig:
        """Change the configuration; every sandbox is retired, so the next calls are cold."""
        self.config = dataclasses.replace(self.config, **changes)
        self.revision += 1
        self.touched()
        for s in list(self.idle):
            self._retire(s)
        await self.provision()
        return self.config

    def publish(self, description: str | None = None) -> Function:
        """A new version from ``$LATEST``'s code and configuration, or the last one when
        nothing changed since it was published (as Lambda does)."""
        assert self.latest is None, "versions are published from $LATEST"
        snapshot = dataclasses.replace(self.config, reserved_concurrency=None,
                                       provisioned_concurrency=0)
        if self.versions:
            last = self.versions[max(self.versions, key=int)]
            if dataclasses.replace(last.config, description=snapshot.description) == snapshot:
                return last
        self.published += 1
        if description is not None:
            snapshot = dataclasses.replace(snapshot, description=description)
        version = Function(snapshot, self.platform, version=str(self.published), latest=self)
        self.versions[version.version] = version
        return version

    def retire_all(self) -> None:
        """The function (or version) is deleted: idle sandboxes go now, busy ones when their
        invocation ends."""
        self.deleted = True
        if self.provisioning is not None:
            self.provisioning.cancel()
        for s in list(self.idle):
            self._retire(s)

    def state(self) -> dict[str, Any]:
        return {"sandboxes": len(self.sandboxes), "idle": len(self.idle), "busy": self.busy,
                "starts": self.starts, "throttles": self.throttles, "revision": self.revision,
                "version": self.version, "state": self.lambda_state}


class FunctionPlatform:
    """All functions of one platform; lives in one event loop."""

    def __init__(self, launcher: Launcher, *, account_concurrency: int = 1000,
                 start_timeout_s: float = 30.0, reap_interval_s: float = 0.5,
                 region: str = "us-east-1", launch_in_executor: bool = False,
                 role_credentials: Credentials | None = None,
                 code_store: CodeStore | None = None) -> None:
        self.launcher = launcher
        # What every sandbox signs its own AWS calls with (another function's Invoke, S3), as a
        # function gets its execution role's temporary credentials: never the platform's own
        # pair, which may be a person's.
        self.role_credentials = role_credentials or Credentials.generate(temporary=True)
        self.account_concurrency = account_concurrency
        self.start_timeout_s = start_timeout_s
        self.reap_interval_s = reap_interval_s
        self.region = region
        self.launch_in_executor = launch_in_executor
        self.code = code_store or CodeStore()
        self.functions: dict[str, Function] = {}
        # Deleted functions and versions whose busy sandboxes still run an invocation.
        self.draining: list[Function] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    def base_environment(self, c: FunctionConfig, *, version: str = LATEST) -> dict[str, str]:
        env = {
            "AWS_LAMBDA_FUNCTION_NAME": c.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(c.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(c.timeout_s)),
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
            # Lambda has no GPU: a sandbox on a machine with one stays on the CPU.
            "SERVEBENCH_DEVICE": "cpu",
            **self.role_credentials.environment(),
        }
        if c.code is None:  # a target of the installed repo; an uploaded package brings its own
            env.update(SERVEBENCH_TARGET=c.target,
                       SERVEBENCH_PARALLEL_INIT="1" if c.parallel_init else "0")
        return env

    def spawn_task(self, coro: Any) -> None:
        self.track(asyncio.get_running_loop().create_task(coro))

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` until it is done; ``aclose`` waits for it."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def every_function(self) -> list[Function]:
        """Every ``$LATEST``, every published version, and the deleted ones still draining."""
        out: list[Function] = []
        for fn in self.functions.values():
            out.append(fn)
            out.extend(fn.versions.values())
        return out + self.draining

    def busy_total(self) -> int:
        return sum(f.busy for f in self.every_function())

    def resolve(self, name: str, qualifier: str | None = None) -> Function:
        """The function or version a FunctionName (a name, an ARN, ``name:qualifier``) and a
        Qualifier name; ``UnknownFunction`` otherwise, and for two qualifiers that differ."""
        key, named = split_name(name)
        if named is not None and qualifier is not None and named != qualifier:
            raise ValueError("The derived qualifier from the function name does not match the "
                             "specified qualifier.")
        qualifier = named if named is not None else qualifier
        fn = self.functions.get(key)
        if fn is not None and qualifier in (None, LATEST):
            return fn
        version = fn.versions.get(qualifier or "") if fn is not None else None
        if version is None:
            shown = FunctionConfig(name=key[:64] or "?").arn(self.region, qualifier)
            raise UnknownFunction(f"Function not found: {shown}")
        return version

    def get(self, name: str) -> Function:
        """A function by name or ARN, as Lambda takes them (a qualifier picks a version)."""
        return self.resolve(name)

    def _start_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_loop())

    async def deploy(self, config: FunctionConfig) -> Function:
        self._start_reaper()
        if config.name in self.functions:
            fn = self.functions[config.name]
            changes = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
            await fn.update(**changes)
            return fn
        fn = self.functions[config.name] = Function(config, self)
        await fn.provision()
        return fn

    def add(self, fn: Function) -> Function:
        """Register a function made by the control plane (its name is free: checked by the
        caller in the same step of the loop)."""
        if self._closed:
            raise RuntimeError("the platform is closed")
        self._start_reaper()
        self.functions[fn.config.name] = fn
        return fn

    def delete(self, fn: Function) -> None:
        """Delete a function with all its versions, or one version; their sandboxes stop
        (busy ones when their invocation ends) and their code goes once nothing uses it."""
        doomed = [fn] if fn.latest is not None else [fn, *fn.versions.values()]
        if fn.latest is not None:
            fn.latest.versions.pop(fn.version, None)
        else:
            self.functions.pop(fn.config.name, None)
        for f in doomed:
            f.retire_all()
            if f.sandboxes:
                self.draining.append(f)
        self.spawn_task(self.collect_code())

    async def collect_code(self) -> None:
        """Remove the packages no function, version or sandbox uses any more."""
        in_use: set[Any] = set()
        for fn in self.every_function():
            if fn.config.code is not None:
                in_use.add(fn.config.code.root)
            in_use.update(Path(s.spec.task_root) for s in fn.sandboxes.values()
                          if s.spec.task_root is not None)
        doomed = self.code.collect(in_use)
        if doomed:
            await asyncio.get_running_loop().run_in_executor(None, self.code.remove, doomed)

    async def invoke(self, name: str, event: bytes) -> Invocation:
        return await self.get(name).invoke(event)

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval_s)
            now = time.monotonic()
            for fn in self.every_function():
                n = fn.reap(now)
                if n:
                    log.debug("reaped %d idle sandboxes of %s", n, fn.config.name)
            if self.draining:
                self.draining = [f for f in self.draining if f.sandboxes]
                await self.collect_code()

    async def aclose(self) -> None:
        """Stop every sandbox (idle, busy or starting) and wait until they are gone; then
        remove every unpacked package."""
        if self._closed:
            return
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        everything = self.every_function()
        for fn in everything:
            if fn.provisioning is not None:
                fn.provisioning.cancel()
        closing = [s.close() for fn in everything for s in fn.sandboxes.values()]
        for fn in everything:
            fn.sandboxes.clear()
            fn.idle.clear()
        await asyncio.gather(*closing, *list(self._tasks), return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self.code.close)
