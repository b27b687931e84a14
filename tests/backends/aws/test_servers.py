"""The aws backend's servers (EC2, Fargate, SageMaker) against moto's server on loopback.

The control plane is the real client code against moto. The data path is partly local, and
each test says where: moto's instances and tasks run nothing, so their address is resolved
through the backend's one seam (``SERVEBENCH_AWS_SERVERS=loopback``: a local ``servebench
serve`` on loopback stands in for the server), and SageMaker's ``InvokeEndpoint`` goes to a local
stand-in of its runtime that verifies the SigV4 signature (``sagemaker_runtime.py``).
"""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

import pytest

from pytest_servebench.backends.aws import AwsBackend, AwsBackendError
from pytest_servebench.backends.aws.budget import Budget
from pytest_servebench.backends.aws.ec2 import AMI_PARAMETERS
from pytest_servebench.backends.aws.images import NoPush
from pytest_servebench.backends.aws.packaging import FunctionPackage
from pytest_servebench.backends.aws.sagemaker import EndpointTarget
from pytest_servebench.backends.aws.servers import (
    LoopbackStandIn,
    Provisioned,
    ServerBill,
)
from pytest_servebench.backends.aws.sweep import find_leftovers, sweep
from pytest_servebench.backends.base import ServerTarget
from pytest_servebench.backends.local.server import health_doc
from pytest_servebench.waiting import NotReady

from .conftest import Moto, left_in_moto

TEXT = json.dumps({"text": "you are all wonderful"}).encode()


def _predict(target: ServerTarget) -> dict[str, Any]:
    req = urllib.request.Request(target.url, data=TEXT, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
        return doc


def test_ec2_server_is_provisioned_served_billed_and_removed(
        loopback_servers: Moto, tiny_package: FunctionPackage) -> None:
    """Control plane: moto. Data path: the instance's address resolves to a local
    ``servebench serve text_rf`` on loopback (moto's instance runs nothing)."""
    import boto3

    ec2, ssm = boto3.client("ec2"), boto3.client("ssm")
    with AwsBackend() as backend:
        server = backend.server("text_rf", platform="ec2", instance_type="c5.large")
        prefix = backend.tags.prefix
        instance_id = server.profile["instance_id"]
        inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
            "Instances"][0]
        assert inst["InstanceType"] == "c5.large"
        assert inst["ImageId"] == ssm.get_parameter(Name=AMI_PARAMETERS["x86_64"])[
            "Parameter"]["Value"]
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert tags["servebench:run-id"] == backend.tags.run_id
        assert tags["Name"].startswith(prefix)
        script = base64.b64decode(ec2.describe_instance_attribute(
            InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]).decode()
        assert "serve text_rf --host 0.0.0.0 --port 8080" in script
        assert f"/{backend.bucket()}/packages/{tiny_package.path.name}" in script
        assert "X-Amz-Signature=" in script  # presigned: the instance needs no role
        (group,) = [g for g in ec2.describe_security_groups()["SecurityGroups"]
                    if g["GroupName"].startswith(prefix)]
        assert [(p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]])
                for p in group["IpPermissions"]] == [(8080, 8080, ["127.0.0.1/32"])]
        assert server.profile["usd_per_hour"] == 0.085
        assert "loopback" in server.profile["address_note"]
        assert isinstance(backend.reach, LoopbackStandIn)
        assert backend.reach.addresses[instance_id] == inst["PublicIpAddress"]
        assert _predict(server)["target"] == "text_rf"
        backend.stop_server(server)
        assert ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
            "Instances"][0]["State"]["Name"] == "terminated"
        (bill,) = backend.bills
        assert bill.billed_s == 60.0 and bill.usd == pytest.approx(0.085 / 60)
        ((what, usd, how),) = backend.budget.runs
        assert (what, how) == ("ec2:c5.large:text_rf", "billed") and usd == bill.usd
        with pytest.raises(LookupError):
            backend.stop_server(server)
    assert left_in_moto(backend.tags.run_id) == []


def test_arm64_instance_boots_the_arm64_ami(loopback_servers: Moto,
                                            tiny_package: FunctionPackage) -> None:
    """Control plane: moto; data path: a local server on loopback."""
    import boto3

    with AwsBackend() as backend:
        server = backend.server("text_rf", platform="ec2", instance_type="t4g.medium")
        assert server.profile["arch"] == "arm64"
        arm = boto3.client("ssm").get_parameter(Name=AMI_PARAMETERS["arm64"])
        assert server.profile["ami"] == arm["Parameter"]["Value"]
        script = base64.b64decode(boto3.client("ec2").describe_instance_attribute(
            InstanceId=server.profile["instance_id"], Attribute="userData")["UserData"][
            "Value"]).decode()
        assert "--target /opt/servebench/arch" in script  # its own wheels, not Lambda's x86
    assert left_in_moto(backend.tags.run_id) == []


class NowhereReach:
    """A seam that resolves every server to a port where nothing listens."""

    note = "nowhere"

    def __init__(self) -> None:
        self.released: list[str] = []

    def caller_cidr(self) -> str:
        return "192.0.2.1/32"

    def base_url(self, server: Provisioned, address: Any) -> str:
        address()
        return "http://127.0.0.1:9"

    def release(self, server: Provisioned) -> None:
        self.released.append(server.ident)


def test_a_server_that_never_gets_ready_shows_its_console_and_is_removed(
        aws_env: Moto, tiny_package: FunctionPackage) -> None:
    import boto3

    reach = NowhereReach()
    with AwsBackend(reach=reach, ready_timeout_s=1.0) as backend:
        with pytest.raises(NotReady) as info:
            backend.server("text_rf", platform="ec2", instance_type="t2.small")
        assert "not ready after 1s" in str(info.value)
        assert "console output of i-" in str(info.value)  # what the instance printed
        assert len(reach.released) == 1
        states = [i["State"]["Name"] for r in boto3.client("ec2").describe_instances(
            InstanceIds=reach.released)["Reservations"] for i in r["Instances"]]
        assert states == ["terminated"]
    assert left_in_moto(backend.tags.run_id) == []


def test_fargate_task_of_the_size_asked(loopback_servers: Moto) -> None:
    """Control plane: moto (ECR repository, cluster, task definition, run_task; the image push
    is not made: moto's ECR has no registry). Data path: a local server on loopback."""
    import boto3

    ecs = boto3.client("ecs")
    images = NoPush()
    with AwsBackend(images=images) as backend:
        task = backend.server("text_rf", platform="fargate", vcpu=0.25, memory_gb=0.5)
        arn = task.profile["task_arn"]
        (described,) = ecs.describe_tasks(cluster=backend.tags.name("servers"),
                                          tasks=[arn])["tasks"]
        assert described["lastStatus"] == "RUNNING"
        definition = ecs.describe_task_definition(
            taskDefinition=described["taskDefinitionArn"])["taskDefinition"]
        assert (definition["cpu"], definition["memory"]) == ("256", "512")
        (container,) = definition["containerDefinitions"]
        assert container["memory"] == 512 and container["image"] == task.profile["image"]
        assert container["portMappings"][0]["containerPort"] == 8080
        (repo,) = [r for r in boto3.client("ecr").describe_repositories()["repositories"]
                   if r["repositoryName"].startswith(backend.tags.prefix)]
        assert images.published == [("text_rf", f"{repo['repositoryUri']}:text-rf")]
        assert "not pushed" in task.profile["image_note"]
        # moto attaches the task's interface but gives it no public IP: the seam says so.
        eni = [d["value"] for a in described["attachments"] for d in a["details"]
               if d["name"] == "networkInterfaceId"]
        assert isinstance(backend.reach, LoopbackStandIn)
        assert eni and f"interface {eni[0]} has no public IP" in backend.reach.addresses[arn]
        assert task.profile["usd_per_hour"] == pytest.approx(0.25 * 0.04048 + 0.5 * 0.004445)
        assert _predict(task)["target"] == "text_rf"
        backend.stop_server(task)
        assert ecs.describe_tasks(cluster=backend.tags.name("servers"), tasks=[arn])[
            "tasks"][0]["lastStatus"] == "STOPPED"
    assert left_in_moto(backend.tags.run_id) == []


def test_sagemaker_endpoint_is_invoked_through_signed_invoke_endpoint(
        aws_env: Moto, sagemaker_runtime: Any) -> None:
    """Control plane: moto (model, endpoint configuration, endpoint). Data path: the load
    engine's InvokeEndpoint client, signed, to a local stand-in of SageMaker's runtime that
    verifies the signature and answers from a local server."""
    import boto3

    from pytest_servebench import ClosedLoop
    from pytest_servebench.engine import drive, run_sync
    from pytest_servebench.functions.sigv4 import Credentials
    from pytest_servebench.target import Payload

    sm = boto3.client("sagemaker")
    with AwsBackend(images=NoPush()) as backend:
        endpoint = backend.server("text_rf", platform="sagemaker", instance_type="ml.c5.2xlarge")
        name = endpoint.profile["endpoint"]
        config = sm.describe_endpoint_config(
            EndpointConfigName=sm.describe_endpoint(EndpointName=name)["EndpointConfigName"])
        assert config["ProductionVariants"][0]["InstanceType"] == "ml.c5.2xlarge"
        assert endpoint.url == f"{sagemaker_runtime.endpoint_url}/endpoints/{name}/invocations"
        payload = Payload(TEXT, "application/json")
        recording = run_sync(lambda: drive(endpoint, ClosedLoop(concurrency=2, requests=20),
                                           [payload], timeout_s=30, time_limit_s=60))
        assert all(r.reply.ok for r in recording.records) and len(recording.records) == 20
        assert sagemaker_runtime.invocations == 20 and sagemaker_runtime.refused == []
        # SageMaker's container contract: pinged until healthy, then every body to
        # /invocations (never /predict); the model runs its image as `IMAGE serve`.
        paths = sagemaker_runtime.container_paths
        assert paths[0] == "/ping" and paths[-20:] == ["/invocations"] * 20
        assert set(paths) == {"/ping", "/invocations"}
        model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        container = model["PrimaryContainer"]
        assert container["Image"] == endpoint.profile["image"]
        assert container["Environment"] == {"SERVEBENCH_TARGET": "text_rf",
                                            "SERVEBENCH_WORKERS": "1",
                                            "SERVEBENCH_THREADS": str(endpoint.profile[
                                                "threads"])}
        # A malformed body is the model's 4xx with its message, through InvokeEndpoint too.
        junk = run_sync(lambda: drive(endpoint, ClosedLoop(concurrency=1, requests=1),
                                      [Payload(b"{not json", "application/json")],
                                      timeout_s=30, time_limit_s=60))
        assert junk.records[0].reply.status == 400, junk.records[0].reply
        # The stand-in does verify: a wrong secret is refused.
        assert isinstance(endpoint, EndpointTarget)
        forged = EndpointTarget(endpoint.url, name="forged", endpoint_name=name,
                                credentials=Credentials("AKIASERVEBENCHTEST01", "wrong"),
                                region="us-east-1")
        bad = run_sync(lambda: drive(forged, ClosedLoop(concurrency=1, requests=1), [payload],
                                     timeout_s=30, time_limit_s=60))
        assert not bad.records[0].reply.ok and sagemaker_runtime.refused
        assert endpoint.profile["usd_per_hour"] == 0.408
        backend.stop_server(endpoint)
        assert sm.list_endpoints(NameContains=backend.tags.prefix)["Endpoints"] == []
    assert left_in_moto(backend.tags.run_id) == []


def test_a_killed_run_leaves_servers_the_sweeper_finds_and_removes(
        loopback_servers: Moto, tiny_package: FunctionPackage, sagemaker_runtime: Any) -> None:
    """The session dies without closing (a kill): what it made is found by its tags."""
    import boto3

    backend = AwsBackend(images=NoPush())
    backend.server("text_rf", platform="ec2", instance_type="c5.large", model_from="s3")
    backend.server("text_rf", platform="fargate", vcpu=0.5, memory_gb=1)
    backend.server("text_rf", platform="sagemaker", instance_type="ml.c5.large")
    assert isinstance(backend.reach, LoopbackStandIn)
    backend.reach.close()  # the local stand-ins die with the session; AWS's servers do not
    run_id = backend.tags.run_id
    session = boto3.Session()
    found = find_leftovers(lambda s: session.client(s), run_id=run_id)
    kinds = sorted({left.resource.kind for left in found})
    assert kinds == ["bucket", "cluster", "endpoint", "endpoint_config", "instance",
                     "instance_profile", "log_group", "model", "repository", "role",
                     "security_group", "task", "task_definition"]
    assert sweep(lambda s: session.client(s), found) == []
    assert left_in_moto(run_id) == []


def test_budget_refuses_a_server_before_anything_is_made(aws_env: Moto) -> None:
    with AwsBackend(budget=Budget(0.05)) as backend:
        with pytest.raises(AwsBackendError, match="over its budget"):
            backend.server("text_rf", platform="ec2", instance_type="g4dn.xlarge")
        assert backend.ledger.resources == []
    assert left_in_moto(backend.tags.run_id) == []


def test_plan_counts_server_hours_and_makes_nothing(aws_env: Moto) -> None:
    with AwsBackend(plan=True) as backend:
        server = backend.server("text_rf", platform="sagemaker", instance_type="ml.g4dn.xlarge")
        assert server.profile["planned"] is True
        (planned,) = backend.planned
        assert planned.usd == pytest.approx(0.7364 / 2)  # 30 min assumed
        assert backend.ledger.resources == []
        # a suite that stops its server early (002) stops a planned one too: nothing to do,
        # and nothing billed (it was counted in the plan); another backend's is still refused
        backend.stop_server(server)
        assert backend.bills == []
        with pytest.raises(LookupError, match="not started by this backend"):
            backend.stop_server(ServerTarget("http://elsewhere.invalid/predict", name="other"))


def test_bill_runs_launch_to_termination_with_a_minute_minimum() -> None:
    short = ServerBill("s", "ec2", "c5.large", 0.085, 100.0, 110.0)
    long = ServerBill("l", "ec2", "c5.large", 0.085, 100.0, 100.0 + 5400.0)
    assert short.billed_s == 60.0 and long.usd == pytest.approx(0.085 * 1.5)
    assert "launch to termination" in long.line()


def test_loopback_stand_in_is_refused_against_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_servebench.backends.aws.servers import reach_from_environment

    monkeypatch.setenv("SERVEBENCH_AWS_SERVERS", "loopback")
    with pytest.raises(ValueError, match="measured where they run"):
        reach_from_environment(control_plane_is_aws=True)
    monkeypatch.setenv("SERVEBENCH_AWS_SERVERS", "elsewhere")
    with pytest.raises(ValueError, match="'public' or 'loopback'"):
        reach_from_environment(control_plane_is_aws=False)


def test_the_shipped_policy_allows_every_call_a_server_makes(
        loopback_servers: Moto, tiny_package: FunctionPackage, sagemaker_runtime: Any) -> None:
    """Every API call of provisioning, invoking and removing an EC2 instance, a Fargate task
    and a SageMaker endpoint, and of sweeping a dead run's, recorded from botocore's events,
    is an action the least-privilege policy in the repo allows."""
    from importlib import resources

    from pytest_servebench import ClosedLoop
    from pytest_servebench.backends.aws.resources import RunTags
    from pytest_servebench.engine import drive, run_sync
    from pytest_servebench.target import Payload

    policy = json.loads(resources.files("pytest_servebench").joinpath(
        "data/aws-iam-policy.json").read_text())
    allowed = {a for st in policy["Statement"] for a in st["Action"] if st["Effect"] == "Allow"}
    seen: set[str] = set()
    prefixes = {"tagging": "tag", "runtime.sagemaker": "sagemaker"}

    def record(model: object, **_: object) -> None:
        service = model.service_model.signing_name  # type: ignore[attr-defined]
        name = str(model.name)  # type: ignore[attr-defined]
        if service != "s3":  # the Lambda test maps S3's operations; the bucket is the same
            seen.add(f"{prefixes.get(service, service)}:{name}")

    backend = AwsBackend(images=NoPush())
    backend.session.events.register("before-call", record)
    backend.server("text_rf", platform="ec2", instance_type="c5.large", model_from="s3")
    backend.server("text_rf", platform="fargate", vcpu=1, memory_gb=2)
    endpoint = backend.server("text_rf", platform="sagemaker", instance_type="ml.c5.large")
    run_sync(lambda: drive(endpoint, ClosedLoop(concurrency=1, requests=2),
                           [Payload(TEXT, "application/json")], timeout_s=30, time_limit_s=60))
    backend.close()
    dead = AwsBackend(tags=RunTags("000000000000beef", "x", 0.0), session=backend.session,
                      images=NoPush())
    dead.server("text_rf", platform="fargate", vcpu=1, memory_gb=2)
    assert isinstance(dead.reach, LoopbackStandIn)
    dead.reach.close()
    sweep(dead.client, find_leftovers(dead.client, run_id=dead.tags.run_id))
    assert {"ec2:RunInstances", "ecs:RunTask", "sagemaker:CreateEndpoint",
            "ssm:GetParameter", "tag:GetResources"} <= seen, seen
    assert sorted(seen - allowed) == []
    assert left_in_moto(backend.tags.run_id) == [] and left_in_moto(dead.tags.run_id) == []


def test_a_function_over_the_zip_limit_deploys_as_the_targets_image(
        aws_env: Moto, tiny_package: FunctionPackage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control plane only (moto's Lambda and ECR): a package over 250 MB unzipped goes as a
    container image from the run's repository. The push itself is not made offline."""
    import dataclasses

    import boto3

    from pytest_servebench.backends.aws import packaging as packaging_module

    big = dataclasses.replace(tiny_package, unzipped_bytes=300 * 2**20)
    assert not big.fits_zip
    monkeypatch.setattr(packaging_module, "build_zip", lambda target: big)
    images = NoPush()
    with AwsBackend(images=images) as backend:
        fn = backend.function("text_rf", memory_mb=2048)
        got = boto3.client("lambda").get_function(FunctionName=fn.function)
        assert got["Configuration"]["PackageType"] == "Image"
        # The image has no entry point of its own: the function names the runtime client and
        # the handler (on AWS, without them the function could not start).
        image_config = got["Configuration"]["ImageConfigResponse"]["ImageConfig"]
        assert image_config == {"EntryPoint": ["python3", "-m", "awslambdaric"],
                                "Command": ["targets.handler.handler"],
                                "WorkingDirectory": "/var/task"}
        (repo,) = [r for r in boto3.client("ecr").describe_repositories()["repositories"]
                   if r["repositoryName"].startswith(backend.tags.prefix)]
        assert got["Code"]["ImageUri"] == fn.profile["image"] == images.published[0][1]
        assert images.published[0][1].startswith(repo["repositoryUri"])
        assert fn.profile["package"] == "image" and "not pushed" in fn.profile["image_note"]
    assert left_in_moto(backend.tags.run_id) == []


def test_an_instance_loads_its_model_from_the_runs_bucket(
        loopback_servers: Moto, tiny_package: FunctionPackage) -> None:
    """Control plane: moto (the model uploaded to the run's bucket, an instance profile whose
    role reads it). Data path: the local server standing in for the instance downloads the
    model from that bucket (moto's S3) as it starts, as the instance would with its role."""
    import boto3

    ec2, iam = boto3.client("ec2"), boto3.client("iam")
    with AwsBackend() as backend:
        server = backend.server("text_rf", platform="ec2", instance_type="t2.small",
                                model_from="s3")
        inst = ec2.describe_instances(InstanceIds=[server.profile["instance_id"]])[
            "Reservations"][0]["Instances"][0]
        (profile,) = [p for p in iam.list_instance_profiles()["InstanceProfiles"]
                      if p["InstanceProfileName"].startswith(backend.tags.prefix)]
        assert inst["IamInstanceProfile"]["Arn"] == profile["Arn"]
        (role,) = profile["Roles"]
        policy = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="servebench")
        (statement,) = policy["PolicyDocument"]["Statement"]
        assert statement["Action"] == ["s3:GetObject"]
        assert statement["Resource"] == f"arn:aws:s3:::{backend.bucket()}/models/*"
        keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(
            Bucket=backend.bucket(), Prefix="models/")["Contents"]]
        assert len(keys) == 1 and keys[0].startswith("models/text_rf/")
        script = base64.b64decode(ec2.describe_instance_attribute(
            InstanceId=inst["InstanceId"], Attribute="userData")["UserData"]["Value"]).decode()
        assert f"export SERVEBENCH_MODEL_URL=s3://{backend.bucket()}/{keys[0]}" in script
        assert "SERVEBENCH_MODEL_PATH" not in script
        assert server.profile["model_from"] == "s3"
        base = server.url.removesuffix("/predict")
        assert "download_s" in health_doc(base)["init_timings_s"]  # it came from the bucket
        assert _predict(server)["target"] == "text_rf"
        with pytest.raises(ValueError, match="model_from='s3' on fargate"):
            backend.server("text_rf", platform="fargate", vcpu=1, memory_gb=2,
                           model_from="s3")
    assert left_in_moto(backend.tags.run_id) == []
