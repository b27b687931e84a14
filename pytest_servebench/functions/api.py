"""Lambda's HTTP API on loopback, enough for ``boto3.client("lambda", endpoint_url=...)`` and the
AWS CLI's ``--endpoint-url``: Invoke (a function, or a version by qualifier) and the control
plane (``control``): CreateFunction with a zip, GetFunction, ListFunctions, UpdateFunctionCode,
UpdateFunctionConfiguration (retires the sandboxes: the next calls are cold), DeleteFunction,
PublishVersion, tags, reserved and provisioned concurrency.

Errors have Lambda's shape: an ``x-amzn-ErrorType`` header and a JSON body with ``Type`` and
``message``, so botocore raises the exception class it would raise against AWS.

Whoever can call this API runs code on the machine (a function is code; sandboxes run as the
platform's user), so every request is checked as AWS checks it: a SigV4 signature by the
platform's credentials or a sandbox's (``sigv4``), a Host header that names this machine's
loopback (a web page cannot reach it by DNS rebinding), bodies read up to Lambda's limits and no
further, and environment variables as Lambda validates them. Slow requests are cut off by the
server's protocol (``protocol``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .code import MAX_CODE_REQUEST_BODY
from .control import ApiError, ControlPlane, S3Source, arch_note
from .platform import FunctionConfig, FunctionPlatform, NotActive, Throttled, UnknownFunction
from .report import encode_tail
from .sigv4 import Credentials, SignatureError, Verifier

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

log = logging.getLogger("servebench.functions")
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 256 * 1024
# Configuration and concurrency requests are a few hundred bytes (an environment is 4 KB at most).
MAX_CONTROL_BODY = 64 * 1024
T = TypeVar("T")


class _Refused(Exception):
    """A request answered with an error before it reaches its operation."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


class _Disconnected(Exception):
    """The client went away while its request was read: nobody to answer."""


def _error(status: int, kind: str, message: str, **more: Any) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse({"Type": "User", "message": message, **more}, status_code=status,
                        headers={"x-amzn-ErrorType": kind})


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:32]} is out of range")
    return value


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN or Infinity, no number that overflows a double; a document nested
    past the parser's depth is an error like any other (``ValueError``)."""
    try:
        return json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError("the document is nested too deeply") from None


def _bare_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [v6]:port
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only: ``localhost``, a loopback address, or a
    name whose every address is a loopback one."""
    name = _bare_host(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


class HostCheck:
    """Which Host headers the API answers: loopback names and addresses, the address it is bound
    to, and ``extra`` names. A name is never resolved (DNS rebinding is a name that resolves to
    127.0.0.1 for a browser); behind a wildcard bind any address literal is accepted too."""

    def __init__(self, bound: Sequence[str], *, extra: Sequence[str] = ()) -> None:
        names = {_bare_host(h) for h in (*bound, *extra) if h}
        self.wildcard = bool(names & {"0.0.0.0", "::", ""})
        if self.wildcard:
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        self.names = frozenset(names - {"0.0.0.0", "::", ""})

    def allows(self, header: str | None) -> bool:
        if not header:
            return False
        name = _bare_host(header)
        if name == "localhost" or name in self.names:
            return True
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return False
        return ip.is_loopback or self.wildcard


def create_app(platform: FunctionPlatform, *, verifier: Verifier, hosts: HostCheck,
               s3: S3Source | None = None) -> Starlette:
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def read_body(request: Request, limit: int, what: str) -> bytes:
        """The body, refused (413) as soon as its declared or received size passes ``limit``:
        nothing past the limit is kept (the server reads and drops the rest)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Refused(_error(413, "RequestTooLargeException",
                                  f"{int(declared)} byte payload is too large for {what} "
                                  f"(limit {limit} bytes)"))
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _Refused(_error(413, "RequestTooLargeException",
                                          f"the payload passed {limit} bytes, the limit of "
                                          f"{what}"))
                chunks.append(chunk)
        except ClientDisconnect:
            raise _Disconnected() from None
        return b"".join(chunks)

    async def signed_body(request: Request, limit: int, what: str) -> bytes:
        """Check the Host header and the signature; the body, read within ``limit``."""
        host = request.headers.get("host")
        if not hosts.allows(host):
            raise _Refused(_error(421, "MisdirectedRequestException",
                                  f"Host {(host or '')[:100]!r} is not a name of this platform "
                                  "(it answers to loopback names and addresses and the "
                                  "address it is bound to)"))
        try:
            auth = verifier.check_headers(request.headers)
            body = await read_body(request, limit, what)
            verifier.verify(auth, method=request.method,
                            raw_path=request.scope["raw_path"].decode("latin-1"),
                            raw_query=request.scope["query_string"].decode("latin-1"),
                            headers=[(k.decode("latin-1"), v.decode("latin-1"))
                                     for k, v in request.headers.raw],
                            body=body)
        except SignatureError as exc:
            raise _Refused(_error(403, exc.error_type, exc.message)) from None
        return body

    def operation(handler: Callable[[Request], Awaitable[Response]],
                  ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except _Refused as refused:
                return refused.response
            except _Disconnected:
                # uvicorn drops a response to a client that is gone; no traceback to log.
                return Response(status_code=400)
        return run

    cp = ControlPlane(platform, s3=s3 or S3Source(None, platform.region))

    def lookup(name: str, qualifier: str | None = None) -> Any:
        try:
            return cp.lookup(name, qualifier)
        except ApiError as exc:
            raise _Refused(_error(exc.status, exc.error_type, exc.message)) from None

    @operation
    async def invoke(request: Request) -> Response:
        kind = request.headers.get("x-amz-invocation-type", "RequestResponse")
        limit = MAX_ASYNC_PAYLOAD if kind == "Event" else MAX_SYNC_PAYLOAD
        body = await signed_body(request, limit, f"the {kind[:40]} invocation type")
        fn = lookup(request.path_params["name"], request.query_params.get("Qualifier"))
        if kind not in ("RequestResponse", "Event", "DryRun"):
            return _error(400, "InvalidParameterValueException",
                          f"InvocationType {kind[:40]!r} is not one of RequestResponse, Event, "
                          "DryRun")
        if not body:
            body = b"{}"
        try:
            parse_json(body)
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
        except NotActive as exc:
            return _error(409, "ResourceConflictException", str(exc))
        except UnknownFunction as exc:  # deleted while the request was read
            return _error(404, "ResourceNotFoundException", str(exc))
        except Exception as exc:  # the platform failed (a sandbox did not start), not the code
            log.warning("invoking %s failed", fn.config.name, exc_info=True)
            return _error(500, "ServiceException",
                          f"the platform could not run the function ({type(exc).__name__}); "
                          "see the platform's log")
        out = inv.outcome
        headers = {"X-Amz-Executed-Version": fn.version,
                   "X-Servebench-Sandbox-Id": out.sandbox_id,
                   "Content-Type": "application/json"}
        note = arch_note(fn.config.architecture)
        if note:
            headers["X-Servebench-Arch-Note"] = note
        if request.headers.get("x-amz-log-type") == "Tail":
            headers["X-Amz-Log-Result"] = encode_tail(out.log)
        if out.function_error:
            headers["X-Amz-Function-Error"] = out.function_error
        if out.init_phases:
            headers["X-Servebench-Init-Phases"] = json.dumps(out.init_phases,
                                                             separators=(",", ":"))
        return Response(out.body, status_code=200, headers=headers)

    async def document(request: Request, limit: int) -> dict[str, Any]:
        """The signed request's JSON object (an empty one for a request without a body)."""
        body = await signed_body(request, limit, "a control-plane request")
        if request.method in ("GET", "DELETE") and not body:
            return {}
        try:
            doc = parse_json(body or b"{}")
        except ValueError as exc:
            raise _Refused(_error(400, "InvalidRequestContentException",
                                  f"Could not parse request body into json: {exc}")) from None
        if not isinstance(doc, dict):
            raise _Refused(_error(400, "InvalidRequestContentException",
                                  "the request body must be a JSON object"))
        return doc

    Answer = tuple[int, dict[str, Any]] | dict[str, Any] | None

    def control(run: Callable[[Request, dict[str, Any]], Awaitable[Answer]], *,
                limit: int = MAX_CONTROL_BODY) -> Callable[[Request], Awaitable[Response]]:
        """A control-plane operation: checked and read like every request, answered with its
        document (200, or the status it gives), no content (204), or its error."""

        @operation
        async def serve(request: Request) -> Response:
            doc = await document(request, limit)
            try:
                answer = await run(request, doc)
            except ApiError as exc:
                return _error(exc.status, exc.error_type, exc.message, **exc.more)
            if answer is None:
                return Response(status_code=204)
            status, payload = answer if isinstance(answer, tuple) else (200, answer)
            return JSONResponse(payload, status_code=status)

        return serve

    def name(r: Request) -> str:
        return str(r.path_params["name"])

    def qualifier(r: Request) -> str | None:
        return r.query_params.get("Qualifier")

    @operation
    async def not_found(request: Request) -> Response:
        await signed_body(request, MAX_CONTROL_BODY, "a request")
        return _error(404, "UnknownOperationException",
                      f"{request.method} {request.url.path[:200]} is not an operation this "
                      "local platform serves")

    functions = "/2015-03-31/functions"
    provisioned = "/2019-09-30/functions/{name}/provisioned-concurrency"
    list_functions = control(lambda r, d: cp.list_functions(r.query_params))
    routes = [
        Route(f"{functions}/{{name}}/invocations", invoke, methods=["POST"]),
        Route(functions, control(lambda r, d: cp.create_function(d),
                                 limit=MAX_CODE_REQUEST_BODY), methods=["POST"]),
        Route(functions, list_functions, methods=["GET"]),
        Route(f"{functions}/", list_functions, methods=["GET"]),
        Route(f"{functions}/{{name}}", control(
            lambda r, d: cp.get_function(name(r), qualifier(r))), methods=["GET"]),
        Route(f"{functions}/{{name}}", control(
            lambda r, d: cp.delete_function(name(r), qualifier(r))), methods=["DELETE"]),
        Route(f"{functions}/{{name}}/configuration", control(
            lambda r, d: cp.get_configuration(name(r), qualifier(r))), methods=["GET"]),
        Route(f"{functions}/{{name}}/configuration", control(
            lambda r, d: cp.update_configuration(name(r), d)), methods=["PUT"]),
        Route(f"{functions}/{{name}}/code", control(
            lambda r, d: cp.update_code(name(r), d), limit=MAX_CODE_REQUEST_BODY),
            methods=["PUT"]),
        Route(f"{functions}/{{name}}/versions", control(
            lambda r, d: cp.publish_version(name(r), d)), methods=["POST"]),
        Route(f"{functions}/{{name}}/versions", control(
            lambda r, d: cp.list_versions(name(r), r.query_params)), methods=["GET"]),
        Route("/2017-03-31/tags/{arn:path}", control(
            lambda r, d: cp.list_tags(r.path_params["arn"])), methods=["GET"]),
        Route("/2017-03-31/tags/{arn:path}", control(
            lambda r, d: cp.tag_resource(r.path_params["arn"], d)), methods=["POST"]),
        Route("/2017-03-31/tags/{arn:path}", control(
            lambda r, d: cp.untag_resource(r.path_params["arn"],
                                           r.query_params.getlist("tagKeys"))),
            methods=["DELETE"]),
        Route("/2017-10-31/functions/{name}/concurrency", control(
            lambda r, d: cp.put_concurrency(name(r), d)), methods=["PUT"]),
        Route("/2017-10-31/functions/{name}/concurrency", control(
            lambda r, d: cp.delete_concurrency(name(r))), methods=["DELETE"]),
        Route("/2019-09-30/functions/{name}/concurrency", control(
            lambda r, d: cp.get_concurrency(name(r))), methods=["GET"]),
        Route(provisioned, control(
            lambda r, d: cp.put_provisioned(name(r), qualifier(r), d)), methods=["PUT"]),
        Route(provisioned, control(
            lambda r, d: cp.get_provisioned(name(r), qualifier(r))), methods=["GET"]),
        Route(provisioned, control(
            lambda r, d: cp.delete_provisioned(name(r), qualifier(r))), methods=["DELETE"]),
        Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE"]),
    ]
    return Starlette(routes=routes)


async def _swallow(aw: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):  # an async (Event) invocation has nobody to report to
        await aw


class PlatformServer:
    """The platform and its API served by uvicorn on a loopback port, in a thread of its own.

    Requests must be signed with ``credentials`` (generated when not given: read them from
    ``srv.credentials``). A host that is not loopback is refused unless ``allow_remote`` and
    the caller's own ``credentials`` are given: anyone who can sign can run code here (a
    function is code, and CreateFunction uploads it). ``header_timeout_s`` and
    ``body_timeout_s`` bound how long a request may take to arrive. Code given as
    S3Bucket/S3Key is fetched from ``s3_endpoint_url`` (default: ``AWS_ENDPOINT_URL_S3`` or
    ``AWS_ENDPOINT_URL``) with ``credentials``.

    >>> with PlatformServer(ProcessLauncher()) as srv:  # doctest: +SKIP
    ...     srv.deploy(FunctionConfig("mnv2", target="mobilenet_v2", memory_mb=1024))
    ...     creds = srv.credentials
    ...     boto3.client("lambda", endpoint_url=srv.endpoint_url,
    ...                  aws_access_key_id=creds.access_key_id,
    ...                  aws_secret_access_key=creds.secret_access_key).invoke(FunctionName="mnv2")
    """

    def __init__(self, launcher_factory: Callable[[], Any], *, host: str = "127.0.0.1",
                 port: int = 0, credentials: Credentials | None = None,
                 allow_remote: bool = False, allowed_hosts: Sequence[str] = (),
                 header_timeout_s: float = 10.0, body_timeout_s: float = 30.0,
                 s3_endpoint_url: str | None = None, **platform_options: Any) -> None:
        if not is_loopback(host):
            if not allow_remote:
                raise ValueError(f"the function platform serves loopback only, not {host!r}: "
                                 "whoever reaches it can run code on this machine "
                                 "(allow_remote=True with credentials to serve others)")
            if credentials is None:
                raise ValueError("serving other machines (allow_remote) needs credentials "
                                 "chosen by the caller, not generated ones")
        for name, value in (("header_timeout_s", header_timeout_s),
                            ("body_timeout_s", body_timeout_s)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        self._launcher_factory = launcher_factory
        self._options = platform_options
        self.host = host
        self.credentials = credentials or Credentials.generate()
        self.header_timeout_s, self.body_timeout_s = header_timeout_s, body_timeout_s
        self.s3_endpoint_url = s3_endpoint_url
        # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
        # proto says TCP, and with Nagle on every reply waits out a 40 ms delayed ACK.
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                   socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        bound = str(self._sock.getsockname()[0])
        self.port = int(self._sock.getsockname()[1])
        self.hosts = HostCheck([host, bound], extra=allowed_hosts)
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

        from .protocol import with_deadlines

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            try:
                self.platform = FunctionPlatform(self._launcher_factory(), **self._options)
            except BaseException as exc:
                self._error = exc
                ready.set()
                return
            # Sandboxes sign with the platform's role credentials, the rest with its own.
            verifier = Verifier([self.credentials, self.platform.role_credentials])
            s3 = S3Source(self.credentials, self.platform.region, self.s3_endpoint_url)
            app = create_app(self.platform, verifier=verifier, hosts=self.hosts, s3=s3)
            protocol = with_deadlines(header_timeout_s=self.header_timeout_s,
                                      body_timeout_s=self.body_timeout_s)
            config = uvicorn.Config(app, log_level="warning", access_log=False,
                                    lifespan="off", timeout_keep_alive=300, http=protocol)
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

    def remove(self, name: str) -> None:
        """Delete the function (DeleteFunction): its sandboxes stop, its code goes."""
        assert self.platform is not None
        platform = self.platform

        async def delete() -> None:
            platform.delete(platform.get(name))

        self.call(delete())

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
