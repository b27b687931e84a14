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
from ...waiting import wait_for
from ..base import Capabilities, ServerTarget
from .budget import Budget
from .resources import Ledger, Resource, RunTags, error_code, is_gone

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ...pricebook import PriceBook
    from ...records import Recording
    from .images import ImagePublisher, PublishedImage
    from .servers import Provisioned, Reach, ServerBill

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
PLATFORMS = ("lambda", "ec2", "fargate", "sagemaker")


class AwsBackendError(RuntimeError):
    pass


class AwsBackend:
    name = "aws"

    def __init__(self, *, region: str | None = None, profile: str | None = None,
                 role_arn: str | None = None, tags: RunTags | None = None,
                 session: Any = None, budget: Budget | None = None,
                 price_book: PriceBook | None = None, plan: bool = False,
                 reach: Reach | None = None, images: ImagePublisher | None = None,
                 ready_timeout_s: float | None = None) -> None:
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
        # Servers: the address seam (None: chosen from SERVEBENCH_AWS_SERVERS when first
        # needed), the image publisher (None: a push on AWS, none offline), their bills.
        self.reach: Reach | None = reach
        self.images: ImagePublisher | None = images
        self.ready_timeout_s = ready_timeout_s
        self.bills: list[ServerBill] = []
        self._servers: dict[str, _Running] = {}
        self._server_count = 0
        self._group_id: str | None = None
        self._profile_arn: str | None = None
        self._subnet_id: str | None = None
        self._cluster: str | None = None
        self._service_roles: dict[str, str] = {}
        self._images: dict[str, PublishedImage] = {}
        self._log_groups: set[str] = set()

    def capabilities(self) -> Capabilities:
        """Lambda holds a function to its memory size (CPU in proportion); a stand-in endpoint
        (the local platform, in tests) has limits of its own, unknown here."""
        endpoint = str(self.client("lambda").meta.endpoint_url)
        if _is_aws(endpoint):
            return Capabilities(PLATFORMS, memory_limits=True, cpu_limits=True,
                                limits="AWS: a function's memory size (CPU in proportion), a "
                                       "server's instance type or task size", elastic=True)
        return Capabilities(PLATFORMS, memory_limits=False, cpu_limits=False,
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
        self._make_log_group(f"/aws/lambda/{function_name}")

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
        code: dict[str, Any]
        image: PublishedImage | None = None
        if not package.fits_zip:  # over Lambda's 250 MB unzipped: the target's image, in ECR
            image = self._image(target)
            code = {"ImageUri": image.uri}
        elif package.needs_s3:
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
        # An image function runs the Runtime Interface Client over the handler: the target's
        # image is not an AWS base image and has no entry point of its own (its `serve` is
        # SageMaker's), so the function's ImageConfig names both.
        how: dict[str, Any] = (
            {"Runtime": "python3.11", "Handler": handler or default_handler()} if image is None
            else {"PackageType": "Image",
                  "ImageConfig": {"EntryPoint": ["python3", "-m", "awslambdaric"],
                                  "Command": [handler or default_handler()],
                                  "WorkingDirectory": "/var/task"}})
        try:
            created = self._create_function(
                FunctionName=fname, Role=self._role(), Code=code, MemorySize=memory_mb,
                Timeout=int(timeout_s), Architectures=[arch], Environment={"Variables": env},
                Tags=self.tags.as_dict(), Publish=provisioned_concurrency > 0,
                Description=f"pytest-servebench {target}", **how)
        except Exception as exc:
            endpoint = str(self.client("lambda").meta.endpoint_url)
            if (image is not None and not _is_aws(endpoint)
                    and error_code(exc) == "InvalidParameterValueException"):
                from ..base import Unsupported

                raise Unsupported(
                    f"{target}'s package is over Lambda's 250 MB unzipped, so it deploys as a "
                    f"container image, which the Lambda endpoint here ({endpoint}, not AWS) "
                    f"refused: {exc}") from None
            raise
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
        if image is not None:
            profile.update(package="image", image=image.uri,
                           **({"image_note": image.note} if image.note else {}))
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
        self._log_groups.discard(f"/aws/lambda/{fname}")

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
               instance_type: str | None = None, vcpu: float | None = None,
               memory_gb: float | None = None, workers: int = 1, threads: int | None = None,
               slots: int | None = None, prices: PriceBook | None = None,
               model_from: str = "package", arch: str = "x86_64") -> ServerTarget:
        """Provision ``target`` on ``platform`` and return it ready: an EC2 instance of
        ``instance_type`` (default c5.large), a Fargate task of ``vcpu``/``memory_gb``
        (``arch``), or a SageMaker endpoint of an ``ml.*`` type. The budget guard admits its
        hours first; ``stop_server`` (or ``close``) removes it and charges its bill, launch to
        termination (``bills``)."""
        from ...platforms import FargateProfile, server_profile
        from .servers import ASSUMED_LIFETIME_S

        book = prices or self.price_book()
        if platform in ("ec2", "sagemaker") and instance_type is None:
            instance_type = "c5.large"
        chosen = server_profile(platform, instance_type=instance_type, vcpu=vcpu,
                                memory_gb=memory_gb, arch=arch, book=book)
        if model_from not in ("package", "s3") or (model_from == "s3" and platform != "ec2"):
            raise ValueError(f"model_from={model_from!r} on {platform}: the aws backend's "
                             "servers carry the model in their package or image; an EC2 "
                             "instance may load it from the run's bucket (model_from='s3')")
        usd_per_hour = chosen.usd_per_hour(book)
        profile: dict[str, Any] = {"backend": self.name, "platform": platform,
                                   "target": target, "region": self.region,
                                   "usd_per_hour": usd_per_hour, "price_book_as_of": book.as_of,
                                   "workers": workers}
        if isinstance(chosen, FargateProfile):
            size = f"{chosen.vcpu:g}vCPU-{chosen.memory_gb:g}GB"
            profile.update(vcpu=chosen.vcpu, memory_gb=chosen.memory_gb, arch=chosen.arch)
        else:
            size = chosen.instance_type
            profile.update(instance_type=chosen.instance_type, vcpu=chosen.vcpu,
                           memory_gb=chosen.memory_gib, arch=chosen.arch)
            if chosen.gpu:
                profile["gpu"] = chosen.gpu
        profile["model_from"] = model_from
        gpu = getattr(chosen, "gpu", None)
        if gpu and not self.plan:
            self._check_stand_in_gpu(f"{size} (an NVIDIA {gpu})")
        label = f"{platform}-{size}-{target}"
        name = f"{platform}:{size}:{target}"
        estimate = usd_per_hour * ASSUMED_LIFETIME_S / 3600.0
        what = f"{name} ({chosen.basis()}, {ASSUMED_LIFETIME_S / 60:.0f} min assumed)"
        if self.plan:
            self.planned.append(PlannedRun(what, name, "server hours", 0.0, estimate))
            return ServerTarget(f"http://{platform}.planned.invalid/predict", name=name,
                                profile={**profile, "planned": True})
        from .budget import OverBudget

        try:
            self.budget.admit(what, estimate)
        except OverBudget as exc:
            raise AwsBackendError(str(exc)) from None
        self._server_count += 1
        label = f"{label}-{self._server_count}"  # a test may start the same shape twice
        if platform == "sagemaker":
            return self._start_endpoint(target, chosen.shape, label, name, profile, workers,
                                        threads)
        if platform == "ec2":
            return self._start_instance(target, chosen, label, name, profile, workers, threads,
                                        model_from=model_from)
        return self._start_task(target, chosen, label, name, profile, workers, threads)

    def _poll_s(self, service: str) -> float:
        """How often to ask a control plane: AWS's, every few seconds; an offline one (moto)
        answers at once."""
        return 5.0 if _is_aws(str(self.client(service).meta.endpoint_url)) else 0.1

    def _undo(self, made: list[Resource]) -> None:
        """Remove what a failed start made, newest first (its own failure is what raises)."""
        for resource in reversed(made):
            self.ledger.forget(resource)
            try:
                self._remove(resource)
            except Exception as exc:
                log.warning("could not remove %s %s after a failed start: %s", resource.kind,
                            resource.name, exc)

    def _check_stand_in_gpu(self, what: str) -> None:
        """On AWS a GPU instance has its GPU; the loopback stand-in serves it on this machine,
        which must then have one (``GpuUnavailable`` before anything is provisioned)."""
        from .servers import LoopbackStandIn

        if isinstance(self._reach(), LoopbackStandIn):
            from ...gpu import require

            require(f"{what} served by the loopback stand-in on this machine")

    def _reach(self) -> Reach:
        if self.reach is None:
            from .servers import reach_from_environment

            self.reach = reach_from_environment(
                control_plane_is_aws=_is_aws(str(self.client("ec2").meta.endpoint_url)))
        return self.reach

    def _security_group(self) -> str:
        """The run's group: the caller's address on the serving port, nothing else."""
        if self._group_id is None:
            from . import ec2
            from .servers import SERVING_PORT

            client = self.client("ec2")
            vpc = ec2.default_vpc(client)
            name = self.tags.name("servers")
            group = ec2.security_group(client, name=name, vpc_id=vpc,
                                       caller_cidr=self._reach().caller_cidr(),
                                       port=SERVING_PORT, tags=self.tags.as_list())
            self.ledger.add(Resource("security_group", group))
            self._group_id, self._subnet_id = group, ec2.default_subnet(client, vpc)
        return self._group_id

    def _upload(self, path: Path, key: str) -> str:
        if key not in self._uploaded:
            self.client("s3").upload_file(str(path), self.bucket(), key)
            self._uploaded.add(key)
        return key

    def _presigned(self, key: str) -> str:
        """A GET URL of ``key`` in the run's bucket, signed with SigV4 (boto3 may otherwise
        sign presigned URLs with the deprecated SigV2 in us-east-1)."""
        from botocore.config import Config

        from .ec2 import PRESIGN_S

        s3 = self.session.client("s3", config=self._config.merge(
            Config(signature_version="s3v4")))
        return str(s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket(), "Key": key}, ExpiresIn=PRESIGN_S))

    def _model_in_bucket(self, target: str) -> dict[str, str]:
        """The target's model file in the run's bucket, as the server's runtime finds it
        (``SERVEBENCH_MODEL_URL``: downloaded with the instance's role as the server starts)."""
        from ...provider import get_provider

        art = get_provider().artifact(target)
        key = self._upload(art.path, f"models/{target}/{art.path.name}")
        return {"SERVEBENCH_MODEL_URL": f"s3://{self.bucket()}/{key}",
                "SERVEBENCH_MODEL_META": json.dumps(dict(art.meta), sort_keys=True)}

    def _instance_profile(self) -> str:
        """The run's instance profile: a role that reads the run's bucket, nothing else (an
        instance that loads its model from S3 needs credentials; the others get none)."""
        if self._profile_arn is None:
            from .ec2 import EC2_TRUST, models_policy

            iam = self.client("iam")
            role = self._role_for("ec2-models", EC2_TRUST, models_policy(self.bucket()))
            name = self.tags.name("ec2-models")
            got = iam.create_instance_profile(InstanceProfileName=name,
                                              Tags=self.tags.as_list())["InstanceProfile"]
            self.ledger.add(Resource("instance_profile", name, str(got["Arn"])))
            iam.add_role_to_instance_profile(InstanceProfileName=name,
                                             RoleName=role.rsplit("/", 1)[-1])
            self._profile_arn = str(got["Arn"])
        return self._profile_arn

    def _start_instance(self, target: str, chosen: Any, label: str, name: str,
                        profile: dict[str, Any], workers: int,
                        threads: int | None, *, model_from: str = "package") -> ServerTarget:
        from . import ec2
        from .packaging import build_zip
        from .servers import SERVING_PORT, Provisioned

        client = self.client("ec2")
        ami = ec2.resolve_ami(self.client("ssm"), chosen.arch, gpu=chosen.gpu)
        group = self._security_group()
        package = build_zip(target)
        package_key = self._upload(package.path, f"packages/{package.path.name}")
        code = ec2.code_zip()
        code_key = self._upload(code, f"code/{code.name}")
        environment = self._model_in_bucket(target) if model_from == "s3" else {}
        script = ec2.user_data(target, package_url=self._presigned(package_key),
                               code_url=self._presigned(code_key),
                               model_file=package.model_file, port=SERVING_PORT,
                               workers=workers, threads=threads, arch=chosen.arch,
                               environment=environment, gpu=chosen.gpu)
        assert self._subnet_id is not None
        instance_profile = self._instance_profile() if model_from == "s3" else None
        launched = time.time()
        instance = ec2.run_instance(client, ami=ami, instance_type=chosen.instance_type,
                                    group_id=group, subnet_id=self._subnet_id, script=script,
                                    name=self.tags.name(label), tags=self.tags.as_list(),
                                    instance_profile_arn=instance_profile)
        made = [self.ledger.add(Resource(
            "instance", instance, f"arn:aws:ec2:{self.region}::instance/{instance}"))]
        # What the boot script starts the server with (user_data sets the device too), for a
        # stand-in that serves it here.
        device = {"SERVEBENCH_DEVICE": "cuda" if chosen.gpu else "cpu"}
        server = Provisioned("ec2", instance, target, SERVING_PORT, chosen.shape,
                             float(profile["usd_per_hour"]), chosen.basis(), launched,
                             environment={**environment, **device})
        poll = self._poll_s("ec2")

        def dead() -> str | None:
            state = ec2.instance_state(client, instance)
            return None if state in ("pending", "running") else f"the instance is {state}"

        def address() -> str:
            wait_for(lambda: ec2.instance_state(client, instance) == "running",
                     timeout_s=300.0, interval_s=poll, what=f"instance {instance} running",
                     dead=dead)
            return ec2.public_address(client, instance)

        return self._ready(server, made, name, {**profile, "ami": ami,
                                                 "instance_id": instance},
                           address=address, logs=ec2.console_output(client, instance),
                           dead=dead, poll_s=poll)

    def _ready(self, server: Provisioned, made: list[Resource], name: str,
               profile: dict[str, Any], *, address: Callable[[], str],
               logs: Callable[[], str], dead: Callable[[], str | None],
               poll_s: float) -> ServerTarget:
        """Wait (bounded) for ``/health`` at the server's address; a failure removes what the
        start made and says what the server printed."""
        from ..local.server import served_by
        from .servers import READY_TIMEOUT_S, wait_healthy

        reach = self._reach()
        started = time.monotonic()  # ready_s: from asking for its address to healthy (boot,
        try:                        # install and model load on AWS; the stand-in's start here)
            base = reach.base_url(server, address)
            wait_healthy(base, what=f"{name} ({server.ident})",
                         timeout_s=self.ready_timeout_s or READY_TIMEOUT_S,
                         interval_s=poll_s, logs=logs, dead=dead)
            waited = time.monotonic() - started
        except BaseException:
            reach.release(server)
            self._undo(made)
            raise
        profile = {**profile, "launch_to_ready_s": round(time.time() - server.launched_unix, 3),
                   "ready_s": round(waited, 3),
                   "launched_unix": round(server.launched_unix, 3)}  # billed from here
        profile.update(served_by(base))  # what runs the model, as the local backend says
        if reach.note:
            profile["address_note"] = reach.note
        target = ServerTarget(f"{base}/predict", name=name, profile=profile)
        self._servers[target.url] = _Running(server, made, target)
        return target

    def _role_for(self, what: str, trust: dict[str, Any], policy: dict[str, Any]) -> str:
        """A role of the run that ``trust``'s service assumes, with ``policy`` inline."""
        if what not in self._service_roles:
            iam = self.client("iam")
            name = self.tags.name(what)
            role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
                                   Description=f"pytest-servebench: {what}",
                                   Tags=self.tags.as_list())["Role"]
            self.ledger.add(Resource("role", name, role["Arn"]))
            iam.put_role_policy(RoleName=name, PolicyName="servebench",
                                PolicyDocument=json.dumps(policy))
            self._service_roles[what] = str(role["Arn"])
        return self._service_roles[what]

    def _image(self, target: str) -> PublishedImage:
        """``target``'s image in the run's repository (one repository and push a target)."""
        from .images import create_repository, registry_login

        if target not in self._images:
            ecr = self.client("ecr")
            name = self.tags.name(target, max_len=100)
            arn, uri = create_repository(ecr, name=name, tags=self.tags.as_list())
            self.ledger.add(Resource("repository", name, arn))
            if self.images is None:
                from .images import DockerPush, NoPush

                offline = not _is_aws(str(ecr.meta.endpoint_url))
                self.images = NoPush() if offline else DockerPush()
            self._images[target] = self.images.publish(target, uri, registry_login(ecr))
        return self._images[target]

    def _start_task(self, target: str, chosen: Any, label: str, name: str,
                    profile: dict[str, Any], workers: int,
                    threads: int | None) -> ServerTarget:
        import math

        from . import fargate
        from .sagemaker import SERVE_ARGUMENT
        from .servers import SERVING_PORT, Provisioned

        ecs, ec2c = self.client("ecs"), self.client("ec2")
        image = self._image(target)
        group = self._security_group()
        if self._cluster is None:
            cluster_name = self.tags.name("servers")
            arn = fargate.create_cluster(ecs, name=cluster_name, tags=self.tags.as_list())
            self.ledger.add(Resource("cluster", cluster_name, arn))
            self._cluster = cluster_name
        cluster = self._cluster
        role = self._role_for("ecs-exec", fargate.ECS_TRUST, fargate.EXECUTION_POLICY)
        log_group = f"/servebench/{self.tags.prefix.rstrip('-')}"
        if log_group not in self._log_groups:
            self._make_log_group(log_group)
        shape = chosen.shape
        threads = threads or shape.threads(cores=max(1, math.ceil(chosen.vcpu)))
        family = self.tags.name(label)
        definition = fargate.register_task_definition(
            ecs, family=family, image=image.uri, vcpu=chosen.vcpu, memory_gb=chosen.memory_gb,
            arch=chosen.arch, port=SERVING_PORT,
            command=[SERVE_ARGUMENT],  # the image's server on its port, as SageMaker runs it
            environment={"SERVEBENCH_TARGET": target, "SERVEBENCH_THREADS": str(threads),
                         "SERVEBENCH_WORKERS": str(workers)},
            execution_role_arn=role, log_group=log_group, region=self.region,
            tags=self.tags.as_list())
        made = [self.ledger.add(Resource("task_definition", family, definition))]
        launched = time.time()
        try:
            assert self._subnet_id is not None
            task = fargate.run_task(ecs, cluster=cluster, task_definition=definition,
                                    subnet_id=self._subnet_id, group_id=group,
                                    tags=self.tags.as_list())
        except BaseException:
            self._undo(made)
            raise
        made.append(self.ledger.add(Resource("task", cluster, task)))
        server = Provisioned("fargate", task, target, SERVING_PORT, shape,
                             float(profile["usd_per_hour"]), chosen.basis(), launched,
                             cluster=cluster)
        poll = self._poll_s("ecs")

        def dead() -> str | None:
            return fargate.task_stopped(ecs, cluster, task)

        def address() -> str:
            wait_for(lambda: fargate.describe_task(ecs, cluster, task).get("lastStatus")
                     == "RUNNING", timeout_s=600.0, interval_s=poll,
                     what=f"task {task} running", dead=dead)
            return fargate.public_address(ecs, ec2c, cluster, task)

        def logs() -> str:
            task_id = task.rsplit("/", 1)[-1]
            try:
                events = self.client("logs").filter_log_events(
                    logGroupName=log_group, logStreamNames=[f"server/server/{task_id}"],
                    limit=40).get("events", [])
            except Exception as exc:
                return f"(logs of task {task_id} unavailable: {exc})"
            return "\n".join(str(e.get("message", "")) for e in events) or "(no log lines)"

        profile = {**profile, "threads": threads, "image": image.uri, "task_arn": task}
        if image.note:
            profile["image_note"] = image.note
        return self._ready(server, made, name, profile, address=address, logs=logs, dead=dead,
                           poll_s=poll)

    def _make_log_group(self, group: str) -> None:
        logs = self.client("logs")
        try:
            logs.create_log_group(logGroupName=group, tags=self.tags.as_dict())
        except Exception as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
        self.ledger.add(Resource("log_group", group))
        self._log_groups.add(group)
        with contextlib.suppress(Exception):  # retention is a nicety, not a requirement
            logs.put_retention_policy(logGroupName=group, retentionInDays=LOG_RETENTION_DAYS)

    def _start_endpoint(self, target: str, shape: Any, label: str, name: str,
                        profile: dict[str, Any], workers: int,
                        threads: int | None) -> ServerTarget:
        import math

        from . import sagemaker
        from .servers import Provisioned

        sm = self.client("sagemaker")
        image = self._image(target)
        role = self._role_for("sagemaker", sagemaker.SAGEMAKER_TRUST, sagemaker.SAGEMAKER_POLICY)
        threads = threads or shape.threads(cores=max(1, math.ceil(shape.vcpu)))
        container = sagemaker.container_definition(image.uri, target=target, workers=workers,
                                                   threads=threads)
        made: list[Resource] = []
        launched = time.time()
        try:
            model = self.tags.name(f"{label}-model")
            arn = sagemaker.create_model(sm, name=model, container=container, role_arn=role,
                                         tags=self.tags.as_list())
            made.append(self.ledger.add(Resource("model", model, arn)))
            config = self.tags.name(f"{label}-config")
            arn = sagemaker.create_endpoint_config(sm, name=config, model=model,
                                                   instance_type=profile["instance_type"],
                                                   tags=self.tags.as_list())
            made.append(self.ledger.add(Resource("endpoint_config", config, arn)))
            endpoint = self.tags.name(label)
            arn = sagemaker.create_endpoint(sm, name=endpoint, config=config,
                                            tags=self.tags.as_list())
            made.append(self.ledger.add(Resource("endpoint", endpoint, arn)))
            waited = sagemaker.wait_in_service(
                sm, endpoint, timeout_s=self.ready_timeout_s or sagemaker.READY_TIMEOUT_S,
                interval_s=3 * self._poll_s("sagemaker"))
        except BaseException:
            self._undo(made)
            raise
        runtime = str(self.client("sagemaker-runtime").meta.endpoint_url)
        server = Provisioned("sagemaker", endpoint, target, 0, shape,
                             float(profile["usd_per_hour"]), str(profile["instance_type"]),
                             launched)
        profile = {**profile, "threads": threads, "image": image.uri, "endpoint": endpoint,
                   "ready_s": round(waited, 3),
                   "launch_to_ready_s": round(time.time() - launched, 3),
                   "launched_unix": round(launched, 3)}  # billed from here
        if image.note:
            profile["image_note"] = image.note
        if not _is_aws(runtime):
            profile["address_note"] = (f"InvokeEndpoint answered by {runtime}, which is not "
                                       "AWS: the replies are its server's")
        from .sagemaker import EndpointTarget, invoke_url

        got = EndpointTarget(invoke_url(runtime, endpoint), name=name, profile=profile,
                             endpoint_name=endpoint, credentials=self.credentials(),
                             region=self.region)
        self._servers[got.url] = _Running(server, made, got)
        return got

    def stop_server(self, target: ServerTarget) -> None:
        """Remove one server now (a task scaled in) and charge its bill, launch to
        termination."""
        running = self._servers.pop(target.url, None)
        if running is None and self.plan and target.profile.get("planned"):
            return  # a plan's server was counted, never started: nothing to stop or bill
        if running is None:
            raise LookupError(f"{getattr(target, 'name', target)} was not started by this "
                              "backend")
        self._stop(running)

    def _stop(self, running: _Running) -> None:
        from .servers import ServerBill

        errors: list[Exception] = []
        for resource in reversed(running.made):
            self.ledger.forget(resource)
            try:
                self._remove(resource)
            except Exception as exc:  # the rest still go; the ledger keeps what did not
                self.ledger.add(resource)
                errors.append(exc)
        if self.reach is not None and running.server.port:
            self.reach.release(running.server)
        bill = ServerBill(running.target.name, running.server.platform, running.server.basis,
                          running.server.usd_per_hour, running.server.launched_unix,
                          time.time())
        self.bills.append(bill)
        self.budget.charge(running.target.name, bill.usd, how="billed")
        log.info("servebench aws: %s", bill.line())
        if errors:
            raise AwsBackendError(f"could not remove all of {running.target.name}: "
                                  + "; ".join(map(str, errors)))

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
        stop_errors: list[Exception] = []
        while self._servers:
            _, running = self._servers.popitem()
            try:
                self._stop(running)
            except Exception as exc:  # the ledger still holds what did not go
                stop_errors.append(exc)
        failures = self.ledger.teardown(self._remove)
        closer = getattr(self.reach, "close", None)
        if closer is not None:
            closer()
        if failures or stop_errors:
            names = ", ".join(f"{r.kind} {r.name}" for r, _ in failures) or str(stop_errors[0])
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

    @staticmethod
    def _server(profile: dict[str, Any]) -> bool:
        """A server on AWS bills by the hour whatever it is sent: its hours were admitted
        when it was provisioned and are charged when it is gone, not per run."""
        return profile.get("platform") in ("ec2", "fargate", "sagemaker")

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
        if self._server(profile):
            if not self.backend.plan:
                return None
            n = expected_requests(workload, assumed_duration_s=DEFAULT_ASSUMED_DURATION_S)
            self.backend.planned.append(PlannedRun(self.what, str(target.name), str(workload),
                                                   n, 0.0))
            return _stand_in(n, DEFAULT_ASSUMED_DURATION_S)
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
        if (not self._on_aws(result.target_profile) or self.backend.plan
                or self._server(result.target_profile)):
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
class _Running:
    """A server this backend provisioned: what it is, what was made for it alone (removed
    when it stops; shared things such as the security group go at ``close``), its target."""

    server: Provisioned
    made: list[Resource]
    target: ServerTarget


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
    elif resource.kind == "instance_profile":
        iam = client("iam")
        got = iam.get_instance_profile(InstanceProfileName=resource.name)["InstanceProfile"]
        for role in got.get("Roles", []):
            iam.remove_role_from_instance_profile(InstanceProfileName=resource.name,
                                                  RoleName=role["RoleName"])
        iam.delete_instance_profile(InstanceProfileName=resource.name)
    elif resource.kind == "instance":
        from .ec2 import terminate

        terminate(client("ec2"), resource.name)
    elif resource.kind == "security_group":
        from .ec2 import delete_security_group

        delete_security_group(client("ec2"), resource.name)
    elif resource.kind == "task":  # name: its cluster; arn: the task
        from .fargate import stop_task

        stop_task(client("ecs"), resource.name, resource.arn)
    elif resource.kind == "task_definition":
        from .fargate import delete_task_definition

        delete_task_definition(client("ecs"), resource.arn or resource.name)
    elif resource.kind == "cluster":
        from .fargate import delete_cluster

        delete_cluster(client("ecs"), resource.name)
    elif resource.kind == "endpoint":
        from .sagemaker import delete_endpoint

        delete_endpoint(client("sagemaker"), resource.name)
    elif resource.kind == "endpoint_config":
        client("sagemaker").delete_endpoint_config(EndpointConfigName=resource.name)
    elif resource.kind == "model":
        client("sagemaker").delete_model(ModelName=resource.name)
    else:
        raise ValueError(f"unknown resource kind {resource.kind!r}")


__all__ = ["AwsBackend", "AwsBackendError", "remove_resource"]
