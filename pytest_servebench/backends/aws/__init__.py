"""The AWS backend (``--servebench-backend=aws``): Lambda functions deployed, measured and removed
in the user's account through boto3.

Credentials and region come from boto3's standard chain (environment, profiles, SSO) or
``--servebench-aws-profile`` / ``--servebench-aws-region``; endpoints from boto3's standard
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` variables, which is how the tests point the
same code at moto's server and the local Lambda platform. Every resource is named
``sb-<run id>-...`` and tagged (``resources.RunTags``); ``close()`` removes them newest first,
and ``servebench aws sweep`` removes what a dead run left.

boto3 is imported when the backend starts, never when the plugin loads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...functions.client import FunctionTarget
from ...functions.sigv4 import Credentials
from ..base import Capabilities
from .budget import Budget
from .resources import Ledger, Resource, RunTags, error_code, is_gone

if TYPE_CHECKING:
    from ...pricebook import PriceBook
    from ...records import Recording

log = logging.getLogger("servebench.aws")

LAMBDA_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
     "Action": "sts:AssumeRole"}]}
# What a function needs at run time: its own logs, nothing else (no managed policy: least
# privilege, and the same document works where managed policies are not loaded).
LAMBDA_LOGS_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
     "Resource": "arn:aws:logs:*:*:log-group:/aws/lambda/sb-*"}]}
IAM_PROPAGATION_S = 90.0  # a new role can take seconds to become assumable by Lambda
READY_TIMEOUT_S = 300.0
LOG_RETENTION_DAYS = 1
ARCHES = ("x86_64", "arm64")


class AwsBackendError(RuntimeError):
    pass


class AwsBackend:
    name = "aws"

    def __init__(self, *, region: str | None = None, profile: str | None = None,
                 role_arn: str | None = None, tags: RunTags | None = None,
                 session: Any = None, budget: Budget | None = None,
                 price_book: PriceBook | None = None, plan: bool = False) -> None:
        from botocore.config import Config

        self.plan = plan  # estimate only: nothing is deployed, nothing is sent
        self.planned: list[PlannedRun] = []
        self.session = session or make_session(profile, region)
        if plan and not self.session.region_name:  # a plan asks nothing of AWS: any region
            self.session = make_session(profile, "us-east-1")
        if not self.session.region_name:
            raise AwsBackendError("no AWS region: set --servebench-aws-region, AWS_REGION or "
                                  "a profile's region")
        self.region: str = self.session.region_name
        self.tags = tags or RunTags.new()
        self.budget = budget or Budget()
        self._price_book = price_book
        self.ledger = Ledger()
        self._config = Config(retries={"max_attempts": 8, "mode": "standard"},
                              connect_timeout=10, read_timeout=120)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._role_arn = role_arn
        self._functions: dict[str, FunctionTarget] = {}
        self._cold_epochs: dict[str, int] = {}
        self._bucket: str | None = None
        self._role_created = False
        self._uploaded: set[str] = set()  # package keys in the run's bucket (content-named)

    def capabilities(self) -> Capabilities:
        """Lambda holds a function to its memory size (CPU in proportion); a stand-in endpoint
        (the local platform, in tests) has limits of its own, unknown here."""
        endpoint = str(self.client("lambda").meta.endpoint_url)
        if _is_aws(endpoint):
            return Capabilities(("lambda",), memory_limits=True, cpu_limits=True,
                                limits="AWS Lambda: the memory size, CPU in proportion")
        return Capabilities(("lambda",), memory_limits=False, cpu_limits=False,
                            limits=f"{endpoint} is not AWS: its limits are its own")

    # -- plumbing --------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(service, config=self._config)
            return self._clients[service]

    def credentials(self) -> Credentials:
        """The session's credentials as they are now, for the load engine's signed invokes
        (temporary ones expire: a run longer than their life needs fresh ones)."""
        creds = self.session.get_credentials()
        if creds is None:
            raise AwsBackendError("no AWS credentials found (environment, profile or SSO)")
        frozen = creds.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)

    def _role(self) -> str:
        if self._role_arn is not None:
            return self._role_arn
        iam = self.client("iam")
        name = self.tags.name("lambda-exec")
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST),
                               Description="pytest-servebench: Lambda execution (logs only)",
                               Tags=self.tags.as_list())["Role"]
        self.ledger.add(Resource("role", name, role["Arn"]))
        iam.put_role_policy(RoleName=name, PolicyName="servebench-logs",
                            PolicyDocument=json.dumps(LAMBDA_LOGS_POLICY))
        self._role_arn = str(role["Arn"])
        self._role_created = True
        return self._role_arn

    def bucket(self) -> str:
        """The run's bucket (packages over the direct-upload limit, models), made on demand."""
        if self._bucket is None:
            s3 = self.client("s3")
            name = self.tags.name("artifacts", max_len=63)
            kwargs: dict[str, Any] = {"Bucket": name}
            if self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            s3.create_bucket(**kwargs)
            self.ledger.add(Resource("bucket", name, f"arn:aws:s3:::{name}"))
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": self.tags.as_list()})
            self._bucket = name
        return self._bucket

    def _log_group(self, function_name: str) -> None:
        logs = self.client("logs")
        group = f"/aws/lambda/{function_name}"
        try:
            logs.create_log_group(logGroupName=group, tags=self.tags.as_dict())
        except Exception as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
        self.ledger.add(Resource("log_group", group))
        with contextlib.suppress(Exception):  # retention is a nicety, not a requirement
            logs.put_retention_policy(logGroupName=group, retentionInDays=LOG_RETENTION_DAYS)

    # -- functions -------------------------------------------------------------------------
    def function(self, target: str = "mobilenet_v2", *, memory_mb: int = 1024,
                 name: str | None = None, reserved_concurrency: int | None = None,
                 provisioned_concurrency: int = 0, keep_alive_s: float = 300.0,
                 timeout_s: float = 30.0, parallel_init: bool = False,
                 model_from: str = "package", handler: str | None = None,
                 environment: dict[str, str] | None = None,
                 arch: str = "x86_64") -> FunctionTarget:
        """Deploy ``target`` as a Lambda function of the run (or return the one deployed under
        the same name) and return it as a target. ``keep_alive_s`` is Lambda's to decide on
        AWS; it is recorded, not applied."""
        from ...functions.platform import FunctionConfig, default_handler
        from .packaging import build_zip

        FunctionConfig(name=name or target, memory_mb=memory_mb, timeout_s=timeout_s,
                       reserved_concurrency=reserved_concurrency,
                       provisioned_concurrency=provisioned_concurrency)  # Lambda's bounds
        if arch not in ARCHES:
            raise ValueError(f"Lambda architectures are {', '.join(ARCHES)}, not {arch!r}")
        if model_from != "package":
            raise ValueError(f"model_from={model_from!r}: the aws backend ships the model in "
                             "the function package only")
        label = name or (f"{target}-{memory_mb}mb" + ("-parallel" if parallel_init else "")
                         + ("" if arch == "x86_64" else f"-{arch}"))
        fname = self.tags.name(label)
        if fname in self._functions:
            return self._functions[fname]
        if self.plan:  # what would be deployed, without deploying it
            planned = FunctionTarget(
                f"https://lambda.{self.region}.amazonaws.com",
                f"{fname}:1" if provisioned_concurrency > 0 else fname, name=f"lambda:{label}",
                profile={"backend": self.name, "target": target, "memory_mb": memory_mb,
                         "arch": arch, "parallel_init": parallel_init,
                         "model_from": model_from, "reserved_concurrency": reserved_concurrency,
                         "provisioned_concurrency": provisioned_concurrency,
                         "region": self.region, "planned": True},
                region=self.region)
            self._functions[fname] = planned
            return planned
        package = build_zip(target)
        if not package.fits_zip:
            raise AwsBackendError(
                f"{target}'s package is {package.unzipped_bytes / 2**20:.0f} MiB unzipped, over "
                "Lambda's 250 MiB zip limit; it needs a container image (not built by this "
                "backend yet)")
        code: dict[str, Any]
        if package.needs_s3:
            key = f"packages/{package.path.name}"  # named by content: one upload a run
            if key not in self._uploaded:
                self.client("s3").upload_file(str(package.path), self.bucket(), key)
                self._uploaded.add(key)
            code = {"S3Bucket": self.bucket(), "S3Key": key}
        else:
            code = {"ZipFile": package.path.read_bytes()}
        env = {"SERVEBENCH_TARGET": target, "SERVEBENCH_MODEL_PATH": package.model_file,
               "SERVEBENCH_PARALLEL_INIT": "1" if parallel_init else "0",
               **(environment or {})}
        self._log_group(fname)
        started = time.monotonic()
        created = self._create_function(
            FunctionName=fname, Runtime="python3.11", Role=self._role(),
            Handler=handler or default_handler(), Code=code, MemorySize=memory_mb,
            Timeout=int(timeout_s), Architectures=[arch], Environment={"Variables": env},
            Tags=self.tags.as_dict(), Publish=provisioned_concurrency > 0,
            Description=f"pytest-servebench {target}")
        fn = self.ledger.add(Resource("function", fname, str(created["FunctionArn"])))
        try:
            self._wait("function_active_v2", fname)
            if reserved_concurrency is not None:
                self.client("lambda").put_function_concurrency(
                    FunctionName=fname, ReservedConcurrentExecutions=reserved_concurrency)
            invoke_name = fname
            if provisioned_concurrency > 0:
                version = str(created.get("Version") or "1")
                self.client("lambda").put_provisioned_concurrency_config(
                    FunctionName=fname, Qualifier=version,
                    ProvisionedConcurrentExecutions=provisioned_concurrency)
                self._wait_provisioned(fname, version)
                invoke_name = f"{fname}:{version}"
        except BaseException:
            self.ledger.forget(fn)
            self._remove(fn)
            raise
        deploy_s = time.monotonic() - started
        profile = {"backend": self.name, "target": target, "memory_mb": memory_mb,
                   "arch": arch, "parallel_init": parallel_init, "model_from": model_from,
                   "reserved_concurrency": reserved_concurrency,
                   "provisioned_concurrency": provisioned_concurrency,
                   "region": self.region, "package_bytes": package.zipped_bytes,
                   "deploy_s": round(deploy_s, 3)}
        endpoint = str(self.client("lambda").meta.endpoint_url)
        from ...platforms import machine_arch

        if arch != machine_arch() and not _is_aws(endpoint):
            # A stand-in platform (the local one, in tests) runs every function on this
            # machine: the price is arm64's, the measurement is not.
            profile["arch_note"] = (f"{arch} is priced as {arch}, but {endpoint} runs it on "
                                    f"this {machine_arch()} machine")
        from .logs import CloudWatchReports

        target_ = FunctionTarget(endpoint, invoke_name, name=f"lambda:{label}", profile=profile,
                                 credentials=self.credentials(), region=self.region,
                                 reports=CloudWatchReports(self.client("logs")))
        self._functions[fname] = target_
        return target_

    def _create_function(self, **kwargs: Any) -> dict[str, Any]:
        """CreateFunction, retried while IAM has not yet propagated a new role to Lambda."""
        lam = self.client("lambda")
        deadline = time.monotonic() + IAM_PROPAGATION_S
        while True:
            try:
                created: dict[str, Any] = lam.create_function(**kwargs)
                return created
            except Exception as exc:
                # AWS's words while a new role propagates; a role that does not exist or
                # does not trust Lambda fails the same way forever, so only our own new role
                # is waited for.
                propagating = "cannot be assumed by lambda" in str(exc).lower()
                if (error_code(exc) == "InvalidParameterValueException" and propagating
                        and self._role_created and time.monotonic() < deadline):
                    time.sleep(2.0)
                    continue
                raise

    def _wait(self, waiter: str, fname: str) -> None:
        delay = 1
        self.client("lambda").get_waiter(waiter).wait(
            FunctionName=fname,
            WaiterConfig={"Delay": delay, "MaxAttempts": int(READY_TIMEOUT_S / delay)})

    def _wait_provisioned(self, fname: str, qualifier: str) -> None:
        lam = self.client("lambda")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            got = lam.get_provisioned_concurrency_config(FunctionName=fname,
                                                         Qualifier=qualifier)
            status = got.get("Status")
            if status == "READY":
                return
            if status == "FAILED":
                raise AwsBackendError(f"provisioned concurrency of {fname}:{qualifier} failed: "
                                      f"{got.get('StatusReason', 'no reason given')}")
            if time.monotonic() > deadline:
                raise AwsBackendError(f"provisioned concurrency of {fname}:{qualifier} not "
                                      f"ready after {READY_TIMEOUT_S:g} s (status {status})")
            time.sleep(2.0)

    def force_cold(self, function: FunctionTarget) -> None:
        """A configuration change retires every execution environment, so the next
        invocations are cold (how SeBS forces cold starts); returns once the update is
        ``Successful``."""
        fname, _, qualifier = function.function.partition(":")
        if self.plan:
            return
        if qualifier:
            raise ValueError(
                f"{function.name} runs on provisioned concurrency ({function.function}): its "
                "environments are kept initialised, and a configuration change of $LATEST "
                "does not retire them, so a cold start cannot be forced")
        lam = self.client("lambda")
        current = lam.get_function_configuration(FunctionName=fname)
        env = dict(current.get("Environment", {}).get("Variables", {}))
        epoch = self._cold_epochs.get(fname, 0) + 1
        self._cold_epochs[fname] = epoch
        env["SERVEBENCH_COLD_EPOCH"] = str(epoch)
        lam.update_function_configuration(FunctionName=fname, Environment={"Variables": env})
        self._wait("function_updated_v2", fname)

    def remove_function(self, function: FunctionTarget) -> None:
        """Delete one function of the run now (its versions and provisioned concurrency go
        with it) and its log group; a later ``function()`` of the same name deploys afresh."""
        fname = function.function.partition(":")[0]
        if self._functions.pop(fname, None) is None:
            raise LookupError(f"{function.function!r} was not deployed by this backend")
        self._cold_epochs.pop(fname, None)
        mine = {("function", fname), ("log_group", f"/aws/lambda/{fname}")}
        doomed = [r for r in self.ledger.resources if (r.kind, r.name) in mine]
        for resource in reversed(doomed):  # the function before its log group
            self._remove(resource)
            self.ledger.forget(resource)

    # -- the budget guard ------------------------------------------------------------------
    def price_book(self) -> PriceBook:
        if self._price_book is None:
            from ...pricebook import load_price_book

            self._price_book = load_price_book()
        return self._price_book

    def guard(self, what: str) -> BudgetGuard:
        """The guard of one test's runs (``what`` names it in a refusal)."""
        return BudgetGuard(self, what)

    # -- servers ---------------------------------------------------------------------------
    def server(self, target: str = "mobilenet_v2", *, platform: str = "ec2",
               **_: Any) -> Any:
        raise ValueError(f"the aws backend deploys Lambda functions; {platform} servers on "
                         "AWS are not built yet (use --servebench-backend=local or docker "
                         "for server cases)")

    def stop_server(self, target: Any) -> None:
        raise LookupError(f"{getattr(target, 'name', target)} was not started by this backend")

    # -- teardown --------------------------------------------------------------------------
    def _remove(self, resource: Resource) -> None:
        try:
            remove_resource(self.client, resource)
        except Exception as exc:
            if not is_gone(exc):
                raise

    def close(self) -> None:
        """Remove everything the run created, newest first; a failure is logged and the rest
        still removed (``servebench aws sweep`` is the net under the net)."""
        self._functions.clear()
        failures = self.ledger.teardown(self._remove)
        if failures:
            names = ", ".join(f"{r.kind} {r.name}" for r, _ in failures)
            raise AwsBackendError(f"could not remove {names}; run `servebench aws sweep "
                                  f"--run-id {self.tags.run_id}`")

    def __enter__(self) -> AwsBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BudgetGuard:
    """Admits a run on AWS when its estimate fits the session's budget; charges what it cost
    (its priced result: REPORT-billed durations) once it ran. Runs on other backends' targets
    (an http endpoint) cost the account nothing and pass."""

    def __init__(self, backend: AwsBackend, what: str) -> None:
        self.backend, self.what = backend, what

    @staticmethod
    def _on_aws(profile: dict[str, Any]) -> bool:
        return profile.get("backend") == AwsBackend.name

    def admit(self, target: Any, workload: Any, *, time_limit_s: float) -> Recording | None:
        from .budget import (
            DEFAULT_ASSUMED_DURATION_S,
            OverBudget,
            estimate_workload_usd,
            expected_requests,
        )

        profile = target.describe()
        if not self._on_aws(profile):
            return None
        estimate = estimate_workload_usd(
            workload, memory_mb=int(profile.get("memory_mb") or 1024),
            book=self.backend.price_book(), arch=profile.get("arch") or "x86_64",
            provisioned_concurrency=int(profile.get("provisioned_concurrency") or 0),
            time_limit_s=time_limit_s)
        if self.backend.plan:
            n = expected_requests(workload, assumed_duration_s=DEFAULT_ASSUMED_DURATION_S)
            self.backend.planned.append(PlannedRun(self.what, str(target.name), str(workload),
                                                   n, estimate))
            return _stand_in(n, DEFAULT_ASSUMED_DURATION_S)
        try:
            self.backend.budget.admit(f"{self.what} [{workload}]", estimate)
        except OverBudget as exc:
            import pytest

            pytest.fail(str(exc), pytrace=False)
        return None

    def charge(self, result: Any) -> None:
        if not self._on_aws(result.target_profile) or self.backend.plan:
            return
        cost = result.cost
        if cost is not None:
            self.backend.budget.charge(self.what, cost.usd_per_request * result.count)
        else:  # no price for it: count the guess, never nothing
            from .budget import estimate_requests_usd

            profile = result.target_profile
            self.backend.budget.charge(self.what, estimate_requests_usd(
                result.count, memory_mb=int(profile.get("memory_mb") or 1024),
                book=self.backend.price_book(), arch=profile.get("arch") or "x86_64"),
                how="estimated")


@dataclass(frozen=True, slots=True)
class PlannedRun:
    """One run a plan counted: the test, the target, the workload, its requests and dollars."""

    test: str
    target: str
    workload: str
    requests: float
    usd: float


def _stand_in(requests: float, duration_s: float) -> Recording:
    """What a planned run hands the test instead of measurements: a few requests that took
    the assumed billed duration (the test goes on; what it asserts means nothing in a plan)."""
    from ...records import Record, Recording
    from ...target import Reply

    n = max(1, min(int(requests), 20))
    rows = tuple(Record(i, False, i * duration_s, i * duration_s, (i + 1) * duration_s,
                        Reply(ok=True, cold_start=False, duration_s=duration_s,
                              billed_duration_s=duration_s))
                 for i in range(n))
    end = n * duration_s
    return Recording(rows, 0.0, 0.0, end, end, 1, False)


def make_session(profile: str | None = None, region: str | None = None) -> Any:
    """A boto3 session from boto3's chain (``profile`` and ``region`` when given), its region
    falling back to ``AWS_REGION``: the one way the plugin, the backend and the commands read
    the user's AWS configuration."""
    import boto3

    return boto3.Session(profile_name=profile, region_name=region or default_region())


def default_region() -> str | None:
    """``AWS_REGION`` when set: boto3 reads only ``AWS_DEFAULT_REGION`` and profiles (None lets
    it), while Lambda's runtime and the other SDKs use ``AWS_REGION``."""
    import os

    return os.environ.get("AWS_REGION") or None


def _is_aws(endpoint_url: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(endpoint_url).hostname or ""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def remove_resource(client: Any, resource: Resource) -> None:
    """Delete one resource with the clients ``client(service)`` gives."""
    if resource.kind == "function":
        client("lambda").delete_function(FunctionName=resource.name)
    elif resource.kind == "log_group":
        client("logs").delete_log_group(logGroupName=resource.name)
    elif resource.kind == "role":
        iam = client("iam")
        for policy in iam.list_role_policies(RoleName=resource.name).get("PolicyNames", []):
            iam.delete_role_policy(RoleName=resource.name, PolicyName=policy)
        for att in iam.list_attached_role_policies(RoleName=resource.name).get(
                "AttachedPolicies", []):
            iam.detach_role_policy(RoleName=resource.name, PolicyArn=att["PolicyArn"])
        iam.delete_role(RoleName=resource.name)
    elif resource.kind == "bucket":
        s3 = client("s3")
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=resource.name):
            doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                      for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if doomed:
                s3.delete_objects(Bucket=resource.name, Delete={"Objects": doomed})
        s3.delete_bucket(Bucket=resource.name)
    elif resource.kind == "repository":
        client("ecr").delete_repository(repositoryName=resource.name, force=True)
    else:
        raise ValueError(f"unknown resource kind {resource.kind!r}")


__all__ = ["AwsBackend", "AwsBackendError", "remove_resource"]
