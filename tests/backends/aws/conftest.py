"""moto's server on loopback stands in for IAM, S3, CloudWatch Logs, ECR, the tagging API (and
Lambda's control plane where the local platform is not needed); boto3 finds it through its
standard ``AWS_ENDPOINT_URL`` variable, so the backend's code is the code that runs on AWS."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_servebench.backends.aws import packaging as packaging_module
from pytest_servebench.backends.aws.packaging import FunctionPackage

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIASERVEBENCHTEST01", "AWS_SECRET_ACCESS_KEY":
               "servebench-test-secret", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_REGION": "us-east-1"}


@dataclass(frozen=True)
class Moto:
    url: str


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    _load_backends(url)
    _manual_ecs_tasks(url)
    try:
        yield Moto(url)
    finally:
        server.stop()


def _load_backends(url: str) -> None:
    """Ask each service once, so moto imports its models now. The server runs in this process,
    and a pytester test restores ``sys.modules`` when it ends: a model module first imported
    inside one would be imported afresh later, and Lambda would look its roles up in an IAM
    that no longer holds them ("cannot be assumed by Lambda")."""
    import boto3

    kw: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1",
                          "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
    boto3.client("iam", **kw).list_roles()
    boto3.client("lambda", **kw).list_functions()
    boto3.client("s3", **kw).list_buckets()
    boto3.client("logs", **kw).describe_log_groups()
    boto3.client("ecr", **kw).describe_repositories()
    boto3.client("sts", **kw).get_caller_identity()
    boto3.client("resourcegroupstaggingapi", **kw).get_resources()
    boto3.client("ec2", **kw).describe_instances()
    boto3.client("ssm", **kw).describe_parameters()
    boto3.client("ecs", **kw).list_clusters()
    boto3.client("sagemaker", **kw).list_models()


def _manual_ecs_tasks(url: str) -> None:
    """moto moves an ECS task one status towards STOPPED on every describe; manual progression
    (advanced only after a million describes) keeps a task RUNNING until it is stopped."""
    import json
    import urllib.request

    req = urllib.request.Request(
        f"{url}/moto-api/state-manager/set-transition", method="POST",
        data=json.dumps({"model_name": "ecs::task", "transition": {
            "progression": "manual", "times": 1_000_000}}).encode())
    with urllib.request.urlopen(req, timeout=10):
        pass


@pytest.fixture
def aws_env(moto_server: Moto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Moto:
    """boto3 pointed at moto with test credentials; no profile or config file of the user's."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_LAMBDA",
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "SERVEBENCH_AWS_SERVERS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return moto_server


def tiny_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("targets/handler.py", "def handler(event, context):\n    return {}\n")
    return buf.getvalue()


@pytest.fixture
def tiny_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FunctionPackage:
    """A real zip, small: the control plane does not care what the package holds."""
    path = tmp_path / "tiny.zip"
    path.write_bytes(tiny_zip())
    package = FunctionPackage(target="text_rf", path=path, sha256="0" * 64,
                              zipped_bytes=path.stat().st_size, unzipped_bytes=100,
                              model_file="model/text_rf.joblib")
    monkeypatch.setattr(packaging_module, "build_zip", lambda target: package)
    return package


@pytest.fixture
def lambda_platform(aws_env: Moto, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The local platform as boto3's Lambda endpoint, signed with the credentials moto gets,
    fetching S3 code from moto."""
    pytest.importorskip("awslambdaric", reason="the local Lambda platform needs [functions]")
    from pytest_servebench.backends.local.functions import ProcessLauncher
    from pytest_servebench.backends.local.processes import new_owner
    from pytest_servebench.backends.local.shaping import Shaper
    from pytest_servebench.functions.api import PlatformServer
    from pytest_servebench.functions.sigv4 import Credentials

    owner, shaper = new_owner(), Shaper()
    credentials = Credentials(CREDENTIALS["AWS_ACCESS_KEY_ID"],
                              CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    with PlatformServer(lambda: ProcessLauncher(owner=owner, shaper=shaper),
                        credentials=credentials, s3_endpoint_url=aws_env.url,
                        reap_interval_s=0.2) as srv:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", srv.endpoint_url)
        yield srv


@pytest.fixture
def loopback_servers(aws_env: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """Servers provisioned on moto are served by a local ``servebench serve`` on loopback
    (``SERVEBENCH_AWS_SERVERS=loopback``): moto's instances and tasks run nothing."""
    monkeypatch.setenv("SERVEBENCH_AWS_SERVERS", "loopback")
    return aws_env


@pytest.fixture
def sagemaker_runtime(aws_env: Moto, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The SigV4-verifying stand-in for SageMaker's runtime, as boto3's endpoint for it."""
    import boto3

    from pytest_servebench.functions.sigv4 import Credentials

    from .sagemaker_runtime import SageMakerRuntime

    runtime = SageMakerRuntime(
        Credentials(CREDENTIALS["AWS_ACCESS_KEY_ID"], CREDENTIALS["AWS_SECRET_ACCESS_KEY"]),
        control_plane=boto3.client("sagemaker", endpoint_url=aws_env.url,
                                   region_name="us-east-1"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.endpoint_url)
    try:
        yield runtime
    finally:
        runtime.close()


def left_in_moto(run_id: str) -> list[str]:
    """What of run ``run_id`` is still alive in moto (empty when nothing): every kind the
    backend makes, asked of each service's own listing as well as through the sweeper."""
    import boto3

    from pytest_servebench.backends.aws.sweep import find_leftovers

    prefix = f"sb-{run_id}-"  # the run's, as RunTags.prefix spells it

    session = boto3.Session()
    left = [f"{x.resource.kind} {x.resource.name}" for x in find_leftovers(
        lambda service: session.client(service), run_id=run_id)]
    ec2 = boto3.client("ec2")
    for r in ec2.describe_instances()["Reservations"]:
        for i in r["Instances"]:
            names = [t["Value"] for t in i.get("Tags", []) if t["Key"] == "Name"]
            if i["State"]["Name"] != "terminated" and any(n.startswith(prefix)
                                                          for n in names):
                left.append(f"ec2 instance {i['InstanceId']}")
    left += [f"security group {g['GroupName']}" for g in
             ec2.describe_security_groups()["SecurityGroups"]
             if g["GroupName"].startswith(prefix)]
    ecs = boto3.client("ecs")
    for arn in ecs.list_clusters()["clusterArns"]:
        for c in ecs.describe_clusters(clusters=[arn])["clusters"]:
            if c["status"] == "ACTIVE" and c["clusterName"].startswith(prefix):
                left.append(f"ecs cluster {c['clusterName']}")
    left += [f"task definition {a}" for a in
             ecs.list_task_definitions(familyPrefix=prefix)["taskDefinitionArns"]]
    sm = boto3.client("sagemaker")
    left += [f"endpoint {e['EndpointName']}" for e in sm.list_endpoints()["Endpoints"]
             if e["EndpointName"].startswith(prefix)]
    left += [f"endpoint config {e['EndpointConfigName']}"
             for e in sm.list_endpoint_configs()["EndpointConfigs"]
             if e["EndpointConfigName"].startswith(prefix)]
    left += [f"model {m['ModelName']}" for m in sm.list_models()["Models"]
             if m["ModelName"].startswith(prefix)]
    left += [f"repository {r['repositoryName']}" for r in
             boto3.client("ecr").describe_repositories()["repositories"]
             if r["repositoryName"].startswith(prefix)]
    left += [f"role {r['RoleName']}" for r in boto3.client("iam").list_roles()["Roles"]
             if r["RoleName"].startswith(prefix)]
    left += [f"instance profile {p['InstanceProfileName']}" for p in
             boto3.client("iam").list_instance_profiles()["InstanceProfiles"]
             if p["InstanceProfileName"].startswith(prefix)]
    left += [f"bucket {b['Name']}" for b in boto3.client("s3").list_buckets()["Buckets"]
             if b["Name"].startswith(prefix)]
    return sorted(set(left))
