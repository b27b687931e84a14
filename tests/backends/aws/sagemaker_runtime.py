"""A stand-in for SageMaker's runtime (``InvokeEndpoint``) on loopback, for the offline tests.

moto's SageMaker makes endpoints but runs nothing behind them, and has no runtime to invoke. This
server verifies each request's SigV4 signature (service ``sagemaker``) with the platform's
``Verifier``, looks the endpoint up in moto (InService, its configuration's model, the model's
``SERVEBENCH_TARGET``), serves it with a local ``servebench serve`` started on first use (on
loopback: the container's side of SageMaker's contract is tested on the image itself, in
tests/backends/docker/test_image_serve.py), and speaks to it as SageMaker speaks to a model's
container: ``GET /ping`` until it answers 200, then each body, with its content type, to
``POST /invocations``. boto3 finds it through ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``.
"""

from __future__ import annotations

import concurrent.futures
import http.server
import threading
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit

from pytest_servebench.functions.sigv4 import Credentials, SignatureError, Verifier


class SageMakerRuntime:
    def __init__(self, credentials: Credentials, *, control_plane: Any) -> None:
        from pytest_servebench.backends.local.processes import new_owner
        from pytest_servebench.backends.local.shaping import Shaper

        self.verifier = Verifier([credentials], service="sagemaker")
        self.control_plane = control_plane  # a boto3 sagemaker client on moto
        self.owner, self.shaper = new_owner(), Shaper()
        self.servers: dict[str, Any] = {}
        self.refused: list[str] = []  # why each refused request was refused
        self.invocations = 0
        self.container_paths: list[str] = []  # what was asked of the model's server, in order
        self._lock = threading.Lock()
        # Servers start in one long-lived thread: a child process dies with the thread that
        # spawned it (PR_SET_PDEATHSIG), and a request's handler thread ends with its connection.
        self._starter = concurrent.futures.ThreadPoolExecutor(1, "sagemaker-runtime-starter")
        runtime = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                runtime.handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.endpoint_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def _target_of(self, endpoint: str) -> str | None:
        sm = self.control_plane
        try:
            got = sm.describe_endpoint(EndpointName=endpoint)
        except Exception:
            return None
        if got["EndpointStatus"] != "InService":
            return None
        config = sm.describe_endpoint_config(EndpointConfigName=got["EndpointConfigName"])
        model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        container = model["PrimaryContainer"]
        if not container.get("Image"):  # SageMaker runs `IMAGE serve`: nothing to run
            return None
        return str(container["Environment"]["SERVEBENCH_TARGET"])

    def _server(self, endpoint: str, target: str) -> Any:
        from pytest_servebench.backends.local.server import ServerProcess

        with self._lock:
            server = self.servers.get(endpoint)
            if server is None:
                server = self._starter.submit(
                    ServerProcess, target, owner=self.owner, shape=None, shaper=self.shaper,
                    label=f"sagemaker-{target}").result()
                self._ping(server.url.rsplit("/", 1)[0])
                self.servers[endpoint] = server
            return server

    def _ping(self, base: str, *, timeout_s: float = 60.0) -> None:
        """SageMaker's health check: the endpoint takes traffic once ``/ping`` answers 200."""
        from pytest_servebench.backends.aws.sagemaker import PING_PATH
        from pytest_servebench.waiting import wait_for

        def ok() -> bool:
            self.container_paths.append(PING_PATH)
            with urllib.request.urlopen(f"{base}{PING_PATH}", timeout=5) as resp:
                return bool(resp.status == 200)

        wait_for(ok, timeout_s=timeout_s, interval_s=0.05, what=f"{base}{PING_PATH}",
                 retry_on=(OSError,))

    def handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        parts = urlsplit(req.path)
        headers = [(k.lower(), v) for k, v in req.headers.items()]
        try:
            auth = self.verifier.check_headers(dict(headers))
            self.verifier.verify(auth, method="POST", raw_path=parts.path,
                                 raw_query=parts.query, headers=headers, body=body)
        except SignatureError as exc:
            self.refused.append(str(exc))
            return self._reply(req, 403, b'{"message": "signature refused"}', "application/json")
        pieces = parts.path.strip("/").split("/")
        if len(pieces) != 3 or pieces[0] != "endpoints" or pieces[2] != "invocations":
            return self._reply(req, 404, b'{"message": "no such operation"}', "application/json")
        endpoint = unquote(pieces[1])
        target = self._target_of(endpoint)
        if target is None:
            return self._reply(req, 400, b'{"message": "Endpoint not found or not InService"}',
                               "application/json")
        from pytest_servebench.backends.aws.sagemaker import INVOCATIONS_PATH

        server = self._server(endpoint, target)
        forward = urllib.request.Request(
            server.url.rsplit("/", 1)[0] + INVOCATIONS_PATH, data=body, method="POST",
            headers={"Content-Type": req.headers.get("Content-Type",
                                                     "application/octet-stream")})
        try:
            with urllib.request.urlopen(forward, timeout=60) as resp:
                status, reply, ctype = resp.status, resp.read(), resp.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            status, reply, ctype = exc.code, exc.read(), "application/json"
        with self._lock:
            self.invocations += 1
            self.container_paths.append(INVOCATIONS_PATH)
        self._reply(req, status, reply, ctype)

    @staticmethod
    def _reply(req: http.server.BaseHTTPRequestHandler, status: int, body: bytes,
               content_type: str) -> None:
        req.send_response(status)
        req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._lock:
            servers, self.servers = list(self.servers.values()), {}
        for server in servers:
            server.stop()
        self._starter.shutdown()
