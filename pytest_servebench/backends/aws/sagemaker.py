"""SageMaker servers: a model from the target's image (the run's ECR repository), an endpoint
configuration of the ``ml.*`` instance type asked and an endpoint, invoked by the load engine
through ``sagemaker-runtime``'s ``InvokeEndpoint`` (SigV4-signed, service ``sagemaker``), never a
public URL: a SageMaker endpoint has none.

The model's container follows SageMaker's contract, which the image honours (see
``targets/images/Dockerfile``): SageMaker runs ``docker run IMAGE serve`` (a model definition
has no command), waits for ``GET /ping`` on port 8080 to answer 200, and sends each
``InvokeEndpoint`` body, with its content type, to ``POST /invocations``. The image names its
target and model; the model's environment adds the workers and threads.

>>> invoke_url("https://runtime.sagemaker.us-east-1.amazonaws.com", "sb-1-e")
'https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/sb-1-e/invocations'
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ..base import ServerTarget

if TYPE_CHECKING:
    from ...functions.sigv4 import Credentials
    from ...target import Client

SIGNING_SERVICE = "sagemaker"
SAGEMAKER_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
     "Action": "sts:AssumeRole"}]}
# The model's container: pull the run's image, read the run's bucket, write its logs.
SAGEMAKER_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
    {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                   "ecr:BatchCheckLayerAvailability"],
     "Resource": "arn:aws:ecr:*:*:repository/sb-*"},
    {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::sb-*/*"},
    {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                   "logs:PutLogEvents"],
     "Resource": "arn:aws:logs:*:*:log-group:/aws/sagemaker/*"}]}
# SageMaker's container contract (the image's side of it is its `serve` program).
SERVE_ARGUMENT = "serve"
CONTAINER_PORT = 8080
PING_PATH, INVOCATIONS_PATH = "/ping", "/invocations"
IN_SERVICE, FAILED = "InService", "Failed"
READY_TIMEOUT_S = 1800.0  # an endpoint takes 5-15 minutes on AWS


def invoke_url(runtime_endpoint: str, endpoint_name: str) -> str:
    return (f"{runtime_endpoint.rstrip('/')}/endpoints/{quote(endpoint_name, safe='')}"
            "/invocations")


def container_definition(image: str, *, target: str, workers: int, threads: int,
                         model_data_url: str | None = None) -> dict[str, Any]:
    """The model's primary container: ``image`` run as SageMaker runs it (``IMAGE serve``,
    :data:`CONTAINER_PORT`), one model behind it, its server's workers and threads.

    >>> container_definition("1.dkr.ecr.us-east-1.amazonaws.com/sb-1:x", target="text_rf",
    ...                      workers=1, threads=2)["Environment"]
    {'SERVEBENCH_TARGET': 'text_rf', 'SERVEBENCH_WORKERS': '1', 'SERVEBENCH_THREADS': '2'}
    """
    container: dict[str, Any] = {"Image": image, "Mode": "SingleModel", "Environment": {
        # The image names its target already; the stand-in runtime reads it from here.
        "SERVEBENCH_TARGET": target, "SERVEBENCH_WORKERS": str(workers),
        "SERVEBENCH_THREADS": str(threads)}}
    if model_data_url:
        container["ModelDataUrl"] = model_data_url
    return container


def create_model(sm: Any, *, name: str, container: dict[str, Any], role_arn: str,
                 tags: list[dict[str, str]]) -> str:
    got = sm.create_model(ModelName=name, PrimaryContainer=container,
                          ExecutionRoleArn=role_arn, Tags=tags)
    return str(got["ModelArn"])


def create_endpoint_config(sm: Any, *, name: str, model: str, instance_type: str,
                           tags: list[dict[str, str]]) -> str:
    got = sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "servebench", "ModelName": model, "InitialInstanceCount": 1,
        "InstanceType": instance_type}], Tags=tags)
    return str(got["EndpointConfigArn"])


def create_endpoint(sm: Any, *, name: str, config: str, tags: list[dict[str, str]]) -> str:
    return str(sm.create_endpoint(EndpointName=name, EndpointConfigName=config,
                                  Tags=tags)["EndpointArn"])


def wait_in_service(sm: Any, name: str, *, timeout_s: float = READY_TIMEOUT_S,
                    interval_s: float = 15.0) -> float:
    """Seconds until the endpoint is ``InService``; its failure reason if it fails."""
    from ...waiting import wait_for

    def status() -> str:
        return str(sm.describe_endpoint(EndpointName=name)["EndpointStatus"])

    def failed() -> str | None:
        got = sm.describe_endpoint(EndpointName=name)
        if got["EndpointStatus"] == FAILED:
            return f"the endpoint failed: {got.get('FailureReason', 'no reason given')}"
        return None

    return wait_for(lambda: status() == IN_SERVICE, timeout_s=timeout_s,
                    interval_s=interval_s, what=f"SageMaker endpoint {name}", dead=failed)


@dataclass(frozen=True)
class EndpointTarget(ServerTarget):
    """A SageMaker endpoint behind ``InvokeEndpoint`` (a server: ``stop_server`` takes it):
    payloads are POSTed to ``url``, the runtime's ``/endpoints/<name>/invocations``, signed
    with SigV4 for service ``sagemaker``."""

    endpoint_name: str = ""
    credentials: Credentials | None = field(default=None, repr=False, compare=False)
    region: str = "us-east-1"

    def describe(self) -> dict[str, Any]:
        return {"kind": "server", "url": self.url, "endpoint": self.endpoint_name,
                **self.profile}

    def client(self, *, concurrency_hint: int) -> Client:
        return invoke_client(self.url, credentials=self.credentials, region=self.region)


def invoke_client(url: str, *, credentials: Credentials | None, region: str) -> Client:
    """The load engine's client for ``InvokeEndpoint``: the http client, each request signed
    (the signer reuses a signature within its second, as for Lambda's Invoke)."""
    from ...functions.sigv4 import RequestSigner, payload_sha256
    from ...http_client import HttpClient

    if credentials is None:
        return HttpClient(url)
    parts = urlsplit(url)
    signer = RequestSigner(credentials, method="POST", host=parts.netloc.rsplit("@", 1)[-1],
                           path=parts.path, query=parts.query, region=region,
                           service=SIGNING_SERVICE)
    hashes: dict[Any, str] = {}

    def sign(payload: Any) -> str:
        digest = hashes.get(payload)
        if digest is None:
            digest = payload_sha256(payload.body)
            if len(hashes) < 1024:
                hashes[payload] = digest
        return signer.header_lines(digest)

    return HttpClient(url, sign=sign)


def delete_endpoint(sm: Any, name: str, *, timeout_s: float = 900.0) -> None:
    """Delete, and wait until it is gone (its configuration and model go after it)."""
    from .resources import error_code

    sm.delete_endpoint(EndpointName=name)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            sm.describe_endpoint(EndpointName=name)
        except Exception as exc:
            if error_code(exc) in ("ValidationException", "ResourceNotFound"):
                return
            raise
        time.sleep(5.0)
