"""Lambda's HTTP API on loopback, enough for ``boto3.client("lambda", endpoint_url=...)`` and the
AWS CLI's ``--endpoint-url``: Invoke, GetFunctionConfiguration, UpdateFunctionConfiguration
(retires the sandboxes: the next calls are cold), PutFunctionConcurrency and
PutProvisionedConcurrencyConfig.

Errors have Lambda's shape: an ``x-amzn-ErrorType`` header and a JSON body with ``Type`` and
``message``, so botocore raises the exception class it would raise against AWS.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .platform import FunctionConfig, FunctionPlatform, Throttled, UnknownFunction
from .report import encode_tail

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
T = TypeVar("T")


def _error(status: int, kind: str, message: str, **more: Any) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse({"Type": "User", "message": message, **more}, status_code=status,
                        headers={"x-amzn-ErrorType": kind})


def function_configuration(fn_config: FunctionConfig, region: str) -> dict[str, Any]:
    return {
        "FunctionName": fn_config.name, "FunctionArn": fn_config.arn(region),
        "Runtime": "python3.11", "Handler": fn_config.handler,
        "MemorySize": fn_config.memory_mb, "Timeout": int(fn_config.timeout_s),
        "Version": "$LATEST", "State": "Active", "LastUpdateStatus": "Successful",
        "PackageType": "Zip", "Architectures": ["x86_64"],
        "Environment": {"Variables": dict(fn_config.environment)},
    }


def create_app(platform: FunctionPlatform) -> Starlette:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def invoke(request: Request) -> Response:
        name = request.path_params["name"]
        kind = request.headers.get("x-amz-invocation-type", "RequestResponse")
        body = await request.body()
        try:
            fn = platform.get(name)
        except UnknownFunction as exc:
            return _error(404, "ResourceNotFoundException", str(exc))
        if kind not in ("RequestResponse", "Event", "DryRun"):
            return _error(400, "InvalidParameterValueException",
                          f"InvocationType {kind!r} is not one of RequestResponse, Event, DryRun")
        limit = MAX_SYNC_PAYLOAD if kind != "Event" else 256 * 1024
        if len(body) > limit:
            return _error(413, "RequestTooLargeException",
                          f"{len(body)} byte payload is too large for the {kind} invocation "
                          f"type (limit {limit} bytes)")
        if not body:
            body = b"{}"
        try:
            json.loads(body)
        except ValueError as exc:
            return _error(400, "InvalidRequestContentException",
                          f"Could not parse request body into json: {exc}")
        if kind == "DryRun":
            return Response(status_code=204)
        if kind == "Event":
            platform.spawn_task(_swallow(fn.invoke(body)))
            return Response(status_code=202)
        try:
            inv = await fn.invoke(body)
        except Throttled as exc:
            return _error(429, "TooManyRequestsException", "Rate Exceeded.", Reason=exc.reason)
        out = inv.outcome
        headers = {"X-Amz-Executed-Version": "$LATEST",
                   "X-Servebench-Sandbox-Id": out.sandbox_id,
                   "Content-Type": "application/json"}
        if request.headers.get("x-amz-log-type") == "Tail":
            headers["X-Amz-Log-Result"] = encode_tail(out.log)
        if out.function_error:
            headers["X-Amz-Function-Error"] = out.function_error
        if out.init_phases:
            headers["X-Servebench-Init-Phases"] = json.dumps(out.init_phases,
                                                             separators=(",", ":"))
        return Response(out.body, status_code=200, headers=headers)

    async def get_configuration(request: Request) -> Response:
        try:
            fn = platform.get(request.path_params["name"])
        except UnknownFunction as exc:
            return _error(404, "ResourceNotFoundException", str(exc))
        return JSONResponse(function_configuration(fn.config, platform.region))

    async def update_configuration(request: Request) -> Response:
        try:
            fn = platform.get(request.path_params["name"])
            doc = json.loads(await request.body() or b"{}")
            changes: dict[str, Any] = {}
            if "MemorySize" in doc:
                changes["memory_mb"] = int(doc["MemorySize"])
            if "Timeout" in doc:
                changes["timeout_s"] = float(doc["Timeout"])
            if "Environment" in doc:
                changes["environment"] = dict(doc["Environment"].get("Variables", {}))
            # Validate by building the new configuration before touching the function.
            dataclasses.replace(fn.config, **changes)
        except UnknownFunction as exc:
            return _error(404, "ResourceNotFoundException", str(exc))
        except (ValueError, TypeError, AttributeError) as exc:
            return _error(400, "InvalidParameterValueException", str(exc))
        config = await fn.update(**changes)
        return JSONResponse(function_configuration(config, platform.region))

    async def set_count(request: Request, field: str, attr: str) -> Response | int:
        """Set one integer of a function's configuration from ``field`` of the JSON body;
        the new value, or the error response."""
        try:
            fn = platform.get(request.path_params["name"])
            n = int(json.loads(await request.body())[field])
            changes: dict[str, Any] = {attr: n}
            config = dataclasses.replace(fn.config, **changes)  # validates
        except UnknownFunction as exc:
            return _error(404, "ResourceNotFoundException", str(exc))
        except (ValueError, TypeError, KeyError) as exc:
            return _error(400, "InvalidParameterValueException", str(exc))
        fn.config = config
        return n

    async def put_concurrency(request: Request) -> Response:
        n = await set_count(request, "ReservedConcurrentExecutions", "reserved_concurrency")
        if not isinstance(n, int):
            return n
        return JSONResponse({"ReservedConcurrentExecutions": n})

    async def put_provisioned(request: Request) -> Response:
        n = await set_count(request, "ProvisionedConcurrentExecutions",
                            "provisioned_concurrency")
        if not isinstance(n, int):
            return n
        await platform.get(request.path_params["name"]).provision()
        return JSONResponse({"RequestedProvisionedConcurrentExecutions": n,
                             "AvailableProvisionedConcurrentExecutions": n,
                             "AllocatedProvisionedConcurrentExecutions": n, "Status": "READY"},
                            status_code=202)

    async def not_found(request: Request) -> Response:
        return _error(404, "UnknownOperationException",
                      f"{request.method} {request.url.path} is not an operation this local "
                      "platform serves")

    routes = [
        Route("/2015-03-31/functions/{name}/invocations", invoke, methods=["POST"]),
        Route("/2015-03-31/functions/{name}/configuration", get_configuration, methods=["GET"]),
        Route("/2015-03-31/functions/{name}/configuration", update_configuration,
              methods=["PUT"]),
        Route("/2017-10-31/functions/{name}/concurrency", put_concurrency, methods=["PUT"]),
        Route("/2019-09-30/functions/{name}/provisioned-concurrency", put_provisioned,
              methods=["PUT"]),
        Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE"]),
    ]
    return Starlette(routes=routes)


async def _swallow(aw: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):  # an async (Event) invocation has nobody to report to
        await aw


class PlatformServer:
    """The platform and its API served by uvicorn on a loopback port, in a thread of its own.

    >>> with PlatformServer(ProcessLauncher()) as srv:  # doctest: +SKIP
    ...     srv.deploy(FunctionConfig("mnv2", target="mobilenet_v2", memory_mb=1024))
    ...     boto3.client("lambda", endpoint_url=srv.endpoint_url).invoke(FunctionName="mnv2")
    """

    def __init__(self, launcher_factory: Callable[[], Any], *, host: str = "127.0.0.1",
                 port: int = 0, **platform_options: Any) -> None:
        self._launcher_factory = launcher_factory
        self._options = platform_options
        self.host = host
        # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
        # proto says TCP, and with Nagle on every reply waits out a 40 ms delayed ACK.
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                   socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port = int(self._sock.getsockname()[1])
        self.platform: FunctionPlatform | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._error: BaseException | None = None

    @property
    def endpoint_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> PlatformServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,),
                                        name="servebench-functions", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s) or self._error is not None:
            self.stop()
            raise RuntimeError(f"the function platform did not start: {self._error}")
        return self

    def _main(self, ready: threading.Event) -> None:
        import uvicorn

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            try:
                self.platform = FunctionPlatform(self._launcher_factory(), **self._options)
            except BaseException as exc:
                self._error = exc
                ready.set()
                return
            config = uvicorn.Config(create_app(self.platform), log_level="warning",
                                    access_log=False, lifespan="off",
                                    timeout_keep_alive=300)
            self._server = uvicorn.Server(config)
            serving = asyncio.create_task(self._server.serve(sockets=[self._sock]))
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.01)
            ready.set()
            try:
                await serving
            finally:
                await self.platform.aclose()

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
            ready.set()

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = 600) -> T:
        """Run ``coro`` in the platform's loop and wait for its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def deploy(self, config: FunctionConfig) -> FunctionConfig:
        assert self.platform is not None
        return self.call(self.platform.deploy(config)).config

    def force_cold(self, name: str) -> None:
        """Retire every sandbox of the function, as a configuration change does."""
        assert self.platform is not None
        self.call(self.platform.get(name).update())

    def state(self, name: str) -> dict[str, Any]:
        assert self.platform is not None
        fn = self.platform.get(name)

        async def read() -> dict[str, Any]:
            return fn.state()

        return self.call(read())

    def stop(self, timeout_s: float = 60.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._sock.close()

    def __enter__(self) -> PlatformServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, name: str, *, timeout_s: float) -> bool:
        """Wait until the function has no sandboxes left (after keep-alive)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.state(name)["sandboxes"] == 0:
                return True
            time.sleep(0.05)
        return False
