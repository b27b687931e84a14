"""The aws backend's control plane against moto's server: deploy, configure, force cold, tear
down, sweep. (Invocations go through the local Lambda platform: test_end_to_end.py.)"""

from __future__ import annotations

import pytest

from pytest_servebench.backends.aws import AwsBackend, AwsBackendError
from pytest_servebench.backends.aws import packaging as packaging_module
from pytest_servebench.backends.aws.packaging import FunctionPackage
from pytest_servebench.backends.aws.resources import TAG_RUN, RunTags
from pytest_servebench.backends.aws.sweep import find_leftovers, resource_of_arn, sweep

from .conftest import Moto


def _everything(backend: AwsBackend) -> dict[str, list[str]]:
    """Every resource in the account whose name carries the run's prefix, by kind."""
    prefix = backend.tags.prefix
    lam, iam, logs, s3 = (backend.client(s) for s in ("lambda", "iam", "logs", "s3"))
    return {
        "function": [f["FunctionName"] for f in lam.list_functions()["Functions"]
                     if f["FunctionName"].startswith(prefix)],
        "role": [r["RoleName"] for r in iam.list_roles()["Roles"]
                 if r["RoleName"].startswith(prefix)],
        "log_group": [g["logGroupName"] for g in logs.describe_log_groups(
            logGroupNamePrefix=f"/aws/lambda/{prefix}")["logGroups"]],
        "bucket": [b["Name"] for b in s3.list_buckets().get("Buckets", [])
                   if b["Name"].startswith(prefix)],
    }


def test_deploy_configure_and_teardown_leave_nothing(aws_env: Moto,
                                                     tiny_package: FunctionPackage) -> None:
    backend = AwsBackend()
    small = backend.function("text_rf", memory_mb=512, reserved_concurrency=3)
    large = backend.function("text_rf", memory_mb=2048, arch="arm64")
    assert backend.function("text_rf", memory_mb=512) is small  # one deployment per name
    lam = backend.client("lambda")
    conf = lam.get_function_configuration(FunctionName=small.function)
    assert conf["MemorySize"] == 512 and conf["Runtime"] == "python3.11"
    assert conf["Environment"]["Variables"]["SERVEBENCH_MODEL_PATH"] == "model/text_rf.joblib"
    assert lam.get_function_configuration(FunctionName=large.function)["Architectures"] == [
        "arm64"]
    assert lam.get_function_concurrency(FunctionName=small.function)[
        "ReservedConcurrentExecutions"] == 3
    tags = lam.list_tags(Resource=conf["FunctionArn"])["Tags"]
    assert tags[TAG_RUN] == backend.tags.run_id and "servebench:created" in tags
    assert small.profile["memory_mb"] == 512 and large.profile["arch"] == "arm64"
    assert small.name == "lambda:text_rf-512mb"  # the identity: no run id in it

    backend.force_cold(small)
    backend.force_cold(small)
    env = lam.get_function_configuration(FunctionName=small.function)["Environment"]["Variables"]
    assert env["SERVEBENCH_COLD_EPOCH"] == "2" and env["SERVEBENCH_TARGET"] == "text_rf"

    made = _everything(backend)
    assert len(made["function"]) == 2 and len(made["role"]) == 1
    assert len(made["log_group"]) == 2 and made["bucket"] == []
    backend.close()
    assert _everything(backend) == {"function": [], "role": [], "log_group": [], "bucket": []}
    assert find_leftovers(backend.client, run_id=backend.tags.run_id) == []


def test_large_package_goes_through_the_runs_bucket(
        aws_env: Moto, tiny_package: FunctionPackage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packaging_module, "DIRECT_UPLOAD_LIMIT", 10)
    assert tiny_package.needs_s3
    with AwsBackend() as backend:
        backend.function("text_rf", memory_mb=1024)
        made = _everything(backend)
        assert len(made["bucket"]) == 1
        s3 = backend.client("s3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=made["bucket"][0])["Contents"]]
        assert keys == [f"packages/{tiny_package.path.name}"]
        tagset = s3.get_bucket_tagging(Bucket=made["bucket"][0])["TagSet"]
        assert {"Key": TAG_RUN, "Value": backend.tags.run_id} in tagset
    assert _everything(backend)["bucket"] == []


def test_a_failed_deploy_removes_what_it_made(aws_env: Moto,
                                              tiny_package: FunctionPackage) -> None:
    backend = AwsBackend(role_arn="arn:aws:iam::123456789012:role/does-not-exist")
    with pytest.raises(Exception, match="role"):
        backend.function("text_rf", memory_mb=1024)
    assert _everything(backend)["function"] == []
    backend.close()
    assert _everything(backend) == {"function": [], "role": [], "log_group": [], "bucket": []}


def test_sweep_removes_a_dead_runs_resources_and_spares_live_ones(
        aws_env: Moto, tiny_package: FunctionPackage) -> None:
    dead = AwsBackend(tags=RunTags("000000000000dead", "someone@elsewhere", 0.0))
    dead.function("text_rf", memory_mb=1024)  # never closed: the run was killed
    live = AwsBackend()
    live.function("text_rf", memory_mb=1024)
    try:
        found = find_leftovers(dead.client, older_than_s=3600)
        kinds = sorted(left.resource.kind for left in found
                       if left.run_id == dead.tags.run_id)
        assert kinds == ["function", "log_group", "role"]
        assert all(left.run_id != live.tags.run_id for left in found)  # too young to sweep
        assert sweep(dead.client, found) == []
        assert _everything(dead) == {"function": [], "role": [], "log_group": [], "bucket": []}
        assert len(_everything(live)["function"]) == 1
    finally:
        live.close()


def test_names_fit_every_service_and_arns_round_trip() -> None:
    tags = RunTags("251125201500abcd", "me@host", 0.0)
    long = tags.name("mobilenet_v2-10240mb-parallel-arm64-with-a-very-long-suffix-indeed")
    assert len(long) <= 64 and long.startswith("sb-251125201500abcd-")
    assert long != tags.name("mobilenet_v2-10240mb-parallel-arm64-with-a-very-long-suffix-other")
    assert tags.name("Upper_Case.and spaces") == "sb-251125201500abcd-upper-case-and-spaces"
    for arn, kind, name in [
        ("arn:aws:lambda:us-east-1:1:function:sb-x-f", "function", "sb-x-f"),
        ("arn:aws:s3:::sb-x-b", "bucket", "sb-x-b"),
        ("arn:aws:logs:us-east-1:1:log-group:/aws/lambda/sb-x-f:*", "log_group",
         "/aws/lambda/sb-x-f"),
        ("arn:aws:ecr:us-east-1:1:repository/sb-x-r", "repository", "sb-x-r"),
        ("arn:aws:iam::1:role/sb-x-role", "role", "sb-x-role"),
    ]:
        res = resource_of_arn(arn)
        assert res is not None and (res.kind, res.name) == (kind, name), arn
    assert resource_of_arn("arn:aws:sqs:us-east-1:1:q") is None


def test_no_region_is_a_clear_error(aws_env: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(AwsBackendError, match="no AWS region"):
        AwsBackend()




_S3_ACTIONS = {"ListObjectVersions": "ListBucketVersions", "ListObjectsV2": "ListBucket",
               "DeleteObjects": "DeleteObject", "HeadObject": "GetObject",
               "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject",
               "CompleteMultipartUpload": "PutObject", "HeadBucket": "ListBucket"}
_PREFIX = {"lambda": "lambda", "iam": "iam", "s3": "s3", "logs": "logs", "ecr": "ecr",
           "tagging": "tag", "sts": "sts"}


def test_the_shipped_policy_allows_every_call_the_backend_makes(
        aws_env: Moto, tiny_package: FunctionPackage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every API call of a deploy (zip through S3), force-cold, teardown and sweep, recorded
    from botocore's events, is an action the least-privilege policy in the repo allows."""
    import json
    from importlib import resources

    policy = json.loads(resources.files("pytest_servebench").joinpath(
        "data/aws-iam-policy.json").read_text())
    allowed = {a for st in policy["Statement"] for a in st["Action"] if st["Effect"] == "Allow"}
    monkeypatch.setattr(packaging_module, "DIRECT_UPLOAD_LIMIT", 10)
    backend = AwsBackend()
    seen: set[str] = set()

    def record(model: object, **_: object) -> None:
        service = model.service_model.signing_name  # type: ignore[attr-defined]
        name = str(model.name)  # type: ignore[attr-defined]
        if service == "s3":
            name = _S3_ACTIONS.get(name, name)
        seen.add(f"{_PREFIX.get(service, service)}:{name}")

    backend.session.events.register("before-call", record)
    fn = backend.function("text_rf", memory_mb=1024, reserved_concurrency=2)
    backend.force_cold(fn)
    backend.close()
    dead = AwsBackend(tags=RunTags("000000000000dead", "x", 0.0), session=backend.session)
    dead.function("text_rf", memory_mb=1024)
    sweep(dead.client, find_leftovers(dead.client, run_id=dead.tags.run_id))
    assert {"lambda:CreateFunction", "iam:CreateRole", "s3:PutObject",
            "tag:GetResources"} <= seen, seen
    assert sorted(seen - allowed) == []


def test_aws_region_alone_names_the_region(aws_env: Moto,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 reads AWS_DEFAULT_REGION; AWS_REGION (what Lambda and the other SDKs set) is
    honoured too."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert AwsBackend().region == "eu-west-1"
