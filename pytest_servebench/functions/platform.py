"""Functions and their sandboxes: Lambda's scaling rules on one machine.

- An invocation takes an idle warm sandbox of the function if there is one (the most recently
  used, as Lambda tends to), else starts a new one: a cold start.
- Reserved concurrency caps the sandboxes busy at once; past it an invocation is throttled
  (``TooManyRequestsException``, HTTP 429), never queued.
- Idle sandboxes are reaped after the keep-alive time; provisioned ones stay, initialised ahead.
- Changing a function's configuration retires its sandboxes, so the next invocations are cold:
  how SeBS forces cold starts on AWS, and how a cold-start experiment forces them here.
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
from typing import Any

from .sandbox import Launcher, Outcome, Sandbox, SandboxSpec
from .sigv4 import Credentials

log = logging.getLogger("servebench.functions")
DEFAULT_HANDLER = "targets.handler.handler"
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


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """One function. ``target`` names what it serves (``targets.registry``)."""

    name: str
    target: str = "mobilenet_v2"
    memory_mb: int = 1024
    timeout_s: float = 30.0
    reserved_concurrency: int | None = None
    provisioned_concurrency: int = 0
    keep_alive_s: float = 300.0
    parallel_init: bool = False
    handler: str = DEFAULT_HANDLER
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
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
        check_environment(self.environment)

    def arn(self, region: str = "us-east-1") -> str:
        return f"arn:aws:lambda:{region}:000000000000:function:{self.name}"


class Throttled(Exception):
    """Lambda's TooManyRequestsException."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownFunction(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Invocation:
    outcome: Outcome
    cold_start: bool
    queued_s: float


class Function:
    def __init__(self, config: FunctionConfig, platform: FunctionPlatform) -> None:
        self.config = config
        self.platform = platform
        self.revision = 0
        self.sandboxes: dict[str, Sandbox] = {}
        self.idle: list[Sandbox] = []
        self.busy = 0
        self.starts = 0
        self.throttles = 0

    # -- scaling ---------------------------------------------------------------------------
    def _spec(self) -> SandboxSpec:
        c = self.config
        env = {**self.platform.base_environment(c), **c.environment}
        return SandboxSpec(sandbox_id=Sandbox.new_id(), function=c.name, handler=c.handler,
                           memory_mb=c.memory_mb, timeout_s=c.timeout_s, environment=env)

    async def _new_sandbox(self, *, provisioned: bool = False) -> Sandbox:
        spec = self._spec()
        launcher = self.platform.launcher
        if self.platform.launch_in_executor:  # launchers that block (a container engine's API)
            launched = await asyncio.get_running_loop().run_in_executor(None, launcher.launch,
                                                                        spec)
        else:  # process launchers fork here: the children's death signal is tied to this thread
            launched = launcher.launch(spec)
        sandbox = Sandbox(spec, launched, revision=self.revision, provisioned=provisioned)
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
        # Concurrency is invocations in flight: the cap holds whether or not a sandbox is idle.
        cap = self.config.reserved_concurrency
        if cap is not None and self.busy >= cap:
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
        if (sandbox.revision == self.revision and not sandbox.broken
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

    async def update(self, **changes: Any) -> FunctionConfig:
        """Change the configuration; every sandbox is retired, so the next calls are cold."""
        self.config = dataclasses.replace(self.config, **changes)
        self.revision += 1
        for s in list(self.idle):
            self._retire(s)
        await self.provision()
        return self.config

    def state(self) -> dict[str, Any]:
        return {"sandboxes": len(self.sandboxes), "idle": len(self.idle), "busy": self.busy,
                "starts": self.starts, "throttles": self.throttles, "revision": self.revision}


class FunctionPlatform:
    """All functions of one platform; lives in one event loop."""

    def __init__(self, launcher: Launcher, *, account_concurrency: int = 1000,
                 start_timeout_s: float = 30.0, reap_interval_s: float = 0.5,
                 region: str = "us-east-1", launch_in_executor: bool = False,
                 role_credentials: Credentials | None = None) -> None:
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
        self.functions: dict[str, Function] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    def base_environment(self, c: FunctionConfig) -> dict[str, str]:
        return {
            "AWS_LAMBDA_FUNCTION_NAME": c.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(c.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(c.timeout_s)),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
            "SERVEBENCH_TARGET": c.target,
            "SERVEBENCH_PARALLEL_INIT": "1" if c.parallel_init else "0",
            **self.role_credentials.environment(),
        }

    def spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def busy_total(self) -> int:
        return sum(f.busy for f in self.functions.values())

    def get(self, name: str) -> Function:
        # Accept a name, a full ARN or a partial ARN, as Lambda does.
        key = name.rsplit(":function:", 1)[-1].split(":", 1)[0]
        try:
            return self.functions[key]
        except KeyError:
            raise UnknownFunction(f"Function not found: {FunctionConfig(name=key).arn()}") \
                from None

    async def deploy(self, config: FunctionConfig) -> Function:
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_loop())
        if config.name in self.functions:
            fn = self.functions[config.name]
            changes = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
            await fn.update(**changes)
            return fn
        fn = self.functions[config.name] = Function(config, self)
        await fn.provision()
        return fn

    async def invoke(self, name: str, event: bytes) -> Invocation:
        return await self.get(name).invoke(event)

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval_s)
            now = time.monotonic()
            for fn in self.functions.values():
                n = fn.reap(now)
                if n:
                    log.debug("reaped %d idle sandboxes of %s", n, fn.config.name)

    async def aclose(self) -> None:
        """Stop every sandbox (idle, busy or starting) and wait until they are gone."""
        if self._closed:
            return
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        closing = [s.close() for fn in self.functions.values() for s in fn.sandboxes.values()]
        for fn in self.functions.values():
            fn.sandboxes.clear()
            fn.idle.clear()
        await asyncio.gather(*closing, *list(self._tasks), return_exceptions=True)
