"""Lambda's control plane on the local platform: CreateFunction with a zip (inline, or from S3
through the S3 endpoint the platform is given), GetFunction, ListFunctions, UpdateFunctionCode,
UpdateFunctionConfiguration, DeleteFunction, PublishVersion, ListVersionsByFunction, tags, and
reserved and provisioned concurrency, with the fields boto3's waiters read (``State``,
``LastUpdateStatus``).

Each operation takes the request's JSON document and returns the answer's document, or raises
``ApiError`` in Lambda's shape (the exception botocore raises against AWS); ``api`` serves them
behind its checks (SigV4, Host, body limits). A function made here runs its uploaded package as
it is (``code``, ``FunctionConfig.code``); a package is unpacked while its CreateFunction or
UpdateFunctionCode request waits, so the answer already says ``Active`` / ``Successful``
(others meanwhile see ``Pending`` / ``InProgress`` and a ResourceConflictException if they try
to change it).

>>> lam = boto3.client("lambda", endpoint_url=srv.endpoint_url, ...)  # doctest: +SKIP
>>> lam.create_function(FunctionName="f", Runtime="python3.11", Role=role,  # doctest: +SKIP
...                     Handler="app.handler", Code={"ZipFile": zip_bytes})["State"]
'Active'
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .code import (
    TOO_LARGE,
    UNZIPPED_LIMIT,
    ZIP_UPLOAD_LIMIT,
    CodeError,
    CodePackage,
    code_sha256,
    file_sha256,
)
from .platform import (
    ACCOUNT,
    ARCHITECTURES,
    LATEST,
    Function,
    FunctionConfig,
    FunctionPlatform,
    UnknownFunction,
    split_name,
)
from .sigv4 import Credentials

log = logging.getLogger("servebench.functions")

# Lambda sets these for a function; here sandboxes run as the platform's user (root in a
# container), so through the API they would let any caller run code in the platform's
# Python or dynamic loader before the handler's module is even imported (a folder with a
# sitecustomize.py on PYTHONPATH did). The Python API (FunctionConfig) may still set them.
GUARDED_ENVIRONMENT = {
    "PYTHONPATH": "it makes the runtime import modules from any folder (sitecustomize.py)",
    "PYTHONSTARTUP": "it names a file of code to run",
    "PYTHONHOME": "it replaces the standard library",
    "PYTHONUSERBASE": "it makes the runtime import a usercustomize.py from any folder",
    "LD_PRELOAD": "it loads a shared library into every process",
    "LD_LIBRARY_PATH": "it makes the dynamic loader take libraries from any folder",
    "LD_AUDIT": "it loads a shared library into every process",
}
# The Python runtimes Lambda offers; a package runs on this machine's Python whatever it names
# (its compiled distributions must match it, as build_zip's do).
RUNTIMES = ("python3.8", "python3.9", "python3.10", "python3.11", "python3.12", "python3.13")
FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
ROLE_ARN = re.compile(r"arn:aws[a-zA-Z-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-/]+")
PYTHON_HANDLER = re.compile(r"[A-Za-z_][\w/-]*(\.[A-Za-z_]\w*)*\.[A-Za-z_]\w*")
DEFAULT_ROLE = f"arn:aws:iam::{ACCOUNT}:role/servebench-local-platform"
UNRESERVED_MINIMUM = 100  # Lambda keeps this much of the account's concurrency unreserved
MAX_TAGS = 50
# Fields that change what runs or where, and that this platform cannot honour: refused, not
# silently dropped.
_UNSERVED = {"Layers": "layers", "FileSystemConfigs": "file systems (EFS)",
             "ImageConfig": "container images"}


class ApiError(Exception):
    """An answer in Lambda's error shape: ``status``, ``error_type`` (the x-amzn-ErrorType
    header, botocore's exception class), ``message`` and extra fields."""

    def __init__(self, status: int, error_type: str, message: str, **more: Any) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message, self.more = status, error_type, message, more


def invalid(message: str) -> ApiError:
    return ApiError(400, "InvalidParameterValueException", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "ResourceConflictException", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "ResourceNotFoundException", message)


def api_environment(doc: Any, current: Mapping[str, str]) -> dict[str, str]:
    """``Environment`` of a CreateFunction or UpdateFunctionConfiguration request as the
    function's new variables: Lambda's checks (``FunctionConfig``) run when the configuration
    is built; here the shape, and the variables the API does not let a caller set
    (``GUARDED_ENVIRONMENT``) unless the function already has them with the same value (a
    configuration read and written back)."""
    if not isinstance(doc, dict):
        raise ValueError("Environment must be an object with Variables")
    variables = doc.get("Variables", {})
    if not isinstance(variables, dict):
        raise ValueError("Environment.Variables must be a map of names to strings")
    for key, why in GUARDED_ENVIRONMENT.items():
        if key in variables and variables[key] != current.get(key):
            raise ValueError(f"{key} cannot be set through this platform's API: sandboxes run "
                             f"as the platform's user, and {why}")
    return dict(variables)


def arch_note(architecture: str) -> str | None:
    """What a function of ``architecture`` really runs on here, when that is not it."""
    from ..platforms import machine_arch

    machine = machine_arch()
    if architecture == machine:
        return None
    return (f"the function asked for {architecture}; it runs as {machine} on this machine "
            "(the local platform emulates no other architecture)")


def _iso(unix: float) -> str:
    """Lambda's LastModified format: ``2024-05-01T12:00:00.000+0000``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix)) + \
        f".{int(unix * 1000) % 1000:03d}+0000"


def configuration(fn: Function, region: str) -> dict[str, Any]:
    """GetFunctionConfiguration's answer for a function or a version."""
    c = fn.config
    out: dict[str, Any] = {
        "FunctionName": c.name, "FunctionArn": c.arn(region, fn.version),
        "Runtime": c.runtime, "Role": c.role or DEFAULT_ROLE, "Handler": c.handler,
        "CodeSize": c.code.code_size if c.code is not None else 0,
        "CodeSha256": c.code.code_sha256 if c.code is not None else "",
        "Description": c.description, "Timeout": int(c.timeout_s), "MemorySize": c.memory_mb,
        "LastModified": _iso(fn.last_modified), "Version": fn.version,
        "Environment": {"Variables": dict(c.environment)},
        "TracingConfig": {"Mode": "PassThrough"}, "RevisionId": fn.revision_id,
        "State": fn.lambda_state,
        "LastUpdateStatus": "InProgress" if fn.updating else "Successful",
        "PackageType": "Zip", "Architectures": [c.architecture],
        "EphemeralStorage": {"Size": 512},
    }
    if fn.lambda_state == "Pending":
        out.update(StateReason="The function is being created.", StateReasonCode="Creating")
    if fn.updating:
        out["LastUpdateStatusReason"] = "The function is being updated."
    return out


def _integer(doc: Mapping[str, Any], key: str) -> int:
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer, not {type(value).__name__}")
    return value


def _string(doc: Mapping[str, Any], key: str, *, max_len: int = 2048) -> str:
    value = doc[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, not {type(value).__name__}")
    if len(value) > max_len:
        raise ValueError(f"{key} is longer than {max_len} characters")
    return value


def _tags(doc: Any) -> dict[str, str]:
    if not isinstance(doc, dict):
        raise ValueError("Tags must be a map of keys to strings")
    for key, value in doc.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise ValueError("a tag key is a string of 1 to 128 characters")
        if key.lower().startswith("aws:"):
            raise ValueError(f"tag keys starting with 'aws:' are reserved ({key[:128]!r})")
        if not isinstance(value, str) or len(value) > 256:
            raise ValueError(f"the value of tag {key[:128]!r} must be a string of at most 256 "
                             "characters")
    return dict(doc)


def _parse_config(doc: Mapping[str, Any], base: FunctionConfig, *,
                  creating: bool) -> FunctionConfig:
    """A configuration from a CreateFunction or UpdateFunctionConfiguration document, over
    ``base``; ``ValueError`` with Lambda's reason for what it would refuse."""
    for key, what in _UNSERVED.items():
        if doc.get(key):
            raise ValueError(f"{key}: this local platform does not serve {what}")
    changes: dict[str, Any] = {}
    if "Runtime" in doc or creating:
        runtime = _string(doc, "Runtime") if "Runtime" in doc else ""
        if runtime not in RUNTIMES:
            raise ValueError(f"The runtime parameter of {runtime[:40] or 'nothing'} is not "
                             f"supported by this local platform (it runs {', '.join(RUNTIMES)} "
                             "packages, on this machine's Python)")
        changes["runtime"] = runtime
    if "Handler" in doc or creating:
        handler = _string(doc, "Handler", max_len=128) if "Handler" in doc else ""
        if PYTHON_HANDLER.fullmatch(handler) is None:
            raise ValueError(f"Handler {handler[:128]!r} is not a Python handler "
                             "(module.function, e.g. app.handler)")
        changes["handler"] = handler
    if "Role" in doc or creating:
        role = _string(doc, "Role") if "Role" in doc else ""
        if ROLE_ARN.fullmatch(role) is None:
            raise ValueError(f"Role {role[:200]!r} is not an IAM role ARN")
        changes["role"] = role
    if "MemorySize" in doc:
        changes["memory_mb"] = _integer(doc, "MemorySize")
    elif creating:
        changes["memory_mb"] = 128
    if "Timeout" in doc:
        changes["timeout_s"] = float(_integer(doc, "Timeout"))
    elif creating:
        changes["timeout_s"] = 3.0
    if "Description" in doc:
        changes["description"] = _string(doc, "Description", max_len=256)
    if "Environment" in doc:
        changes["environment"] = api_environment(doc["Environment"], base.environment)
    if "Architectures" in doc:
        changes["architecture"] = _architecture(doc["Architectures"])
    return dataclasses.replace(base, **changes)  # FunctionConfig checks the rest


def _architecture(value: Any) -> str:
    if (not isinstance(value, list) or len(value) != 1 or value[0] not in ARCHITECTURES):
        raise ValueError(f"Architectures must hold one of {', '.join(ARCHITECTURES)}")
    return str(value[0])


@dataclass
class S3Source:
    """Where CreateFunction and UpdateFunctionCode fetch ``S3Bucket``/``S3Key`` from: the
    endpoint the platform is given (``endpoint_url``, else ``AWS_ENDPOINT_URL_S3`` or
    ``AWS_ENDPOINT_URL`` where it runs), signed with the platform's own credentials. Without
    an endpoint S3 code is refused: a local platform does not reach into an AWS account."""

    credentials: Credentials | None
    region: str
    endpoint_url: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def endpoint(self) -> str | None:
        return (self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL") or None)

    def _client(self, endpoint: str) -> Any:
        with self._lock:
            if endpoint not in self._clients:
                import boto3
                from botocore.config import Config

                creds = self.credentials
                self._clients[endpoint] = boto3.session.Session().client(
                    "s3", endpoint_url=endpoint, region_name=self.region,
                    aws_access_key_id=creds.access_key_id if creds else None,
                    aws_secret_access_key=creds.secret_access_key if creds else None,
                    aws_session_token=creds.session_token if creds else None,
                    config=Config(connect_timeout=10, read_timeout=60,
                                  retries={"max_attempts": 3, "mode": "standard"}))
            return self._clients[endpoint]

    def fetch(self, bucket: str, key: str, version: str | None, out: IO[bytes], *,
              limit: int) -> None:
        """Write the object to ``out``, at most ``limit`` bytes (blocking: run it in an
        executor); ``CodeError`` in Lambda's words otherwise."""
        endpoint = self.endpoint()
        if endpoint is None:
            raise CodeError("this local platform was given no S3 endpoint (start it with "
                            "AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL set), so it cannot fetch "
                            "S3Bucket/S3Key code; upload the zip as ZipFile")
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs = {"Bucket": bucket, "Key": key}
        if version:
            kwargs["VersionId"] = version
        try:
            obj = self._client(endpoint).get_object(**kwargs)
            if int(obj.get("ContentLength") or 0) > limit:
                raise CodeError(TOO_LARGE)
            size = 0
            for chunk in obj["Body"].iter_chunks(1024 * 1024):
                size += len(chunk)
                if size > limit:
                    raise CodeError(TOO_LARGE)
                out.write(chunk)
            out.flush()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise CodeError(f"Error occurred while GetObject. S3 Error Code: "
                            f"{str(err.get('Code', '?'))[:64]}. S3 Error Message: "
                            f"{str(err.get('Message', ''))[:200]}") from None
        except (BotoCoreError, ValueError) as exc:  # unreachable, a bad bucket name
            raise CodeError(f"Error occurred while GetObject: {type(exc).__name__}",
                            error_type="ServiceException", status=500) from None


class ControlPlane:
    """The control-plane operations of one platform, run in its loop."""

    def __init__(self, platform: FunctionPlatform, *, s3: S3Source) -> None:
        self.platform = platform
        self.s3 = s3
        self.region = platform.region

    # -- look-ups --------------------------------------------------------------------------
    def lookup(self, name: str, qualifier: str | None = None) -> Function:
        try:
            return self.platform.resolve(name, qualifier)
        except UnknownFunction as exc:
            raise not_found(str(exc)) from None
        except ValueError as exc:
            raise invalid(str(exc)) from None

    def unqualified(self, name: str) -> Function:
        """The function itself (its ``$LATEST``): operations on the function, not a version."""
        if split_name(name)[1] not in (None, LATEST):
            raise invalid("this operation takes a function's name or unqualified ARN, not a "
                          "version")
        return self.lookup(name)

    def by_arn(self, arn: str) -> Function:
        if ":function:" not in arn or not arn.startswith("arn:"):
            raise invalid(f"{arn[:200]!r} is not a function ARN")
        if split_name(arn)[1] is not None:
            raise invalid("tags belong to the function: give its unqualified ARN")
        return self.lookup(arn)

    def _check_launcher(self) -> None:
        if not getattr(self.platform.launcher, "runs_uploaded_code", False):
            raise invalid("this platform's sandboxes cannot run uploaded packages (its "
                          "launcher runs the installed targets only, e.g. in containers); "
                          "start the platform with process sandboxes (servebench lambda)")

    @staticmethod
    def _check_revision(fn: Function, doc: Mapping[str, Any]) -> None:
        wanted = doc.get("RevisionId")
        if wanted is not None and wanted != fn.revision_id:
            raise ApiError(412, "PreconditionFailedException",
                           "The Revision Id provided does not match the latest Revision Id. "
                           "Call the GetFunction/GetAlias API to retrieve the latest Revision Id")

    @staticmethod
    def _check_idle(fn: Function) -> None:
        if fn.lambda_state != "Active" or fn.updating:
            raise conflict("The operation cannot be performed at this time. An update is in "
                           f"progress for resource: {fn.config.arn()}")

    # -- code ------------------------------------------------------------------------------
    async def _package(self, code: Any) -> CodePackage:
        """The package a ``Code`` document names, unpacked (or found unpacked: the same
        content is unpacked once)."""
        if not isinstance(code, dict):
            raise invalid("Code must be an object with ZipFile, or S3Bucket and S3Key")
        if code.get("ImageUri"):
            raise invalid("this local platform runs zip packages (PackageType Zip), not "
                          "container images")
        loop = asyncio.get_running_loop()
        store = self.platform.code
        try:
            if "ZipFile" in code:
                data = _zip_bytes(code["ZipFile"])
                sha = await loop.run_in_executor(None, code_sha256, data)
                kept = store.get(sha)
                if kept is not None:
                    return kept
                package = await loop.run_in_executor(None, lambda: store.unpack(data, sha=sha))
            elif "S3Bucket" in code and "S3Key" in code:
                try:
                    bucket, key = _string(code, "S3Bucket", max_len=63), _string(code, "S3Key")
                    version = (_string(code, "S3ObjectVersion", max_len=1024)
                               if "S3ObjectVersion" in code else None)
                except ValueError as exc:
                    raise invalid(str(exc)) from None
                package = await loop.run_in_executor(None, self._from_s3, bucket, key, version)
            else:
                raise invalid("Code must have ZipFile, or S3Bucket and S3Key")
        except CodeError as exc:
            raise ApiError(exc.status, exc.error_type, str(exc)) from None
        return store.adopt(package)

    def _from_s3(self, bucket: str, key: str, version: str | None) -> CodePackage:
        store = self.platform.code
        with store.spool() as spool:
            self.s3.fetch(bucket, key, version, spool, limit=UNZIPPED_LIMIT)
            path = Path(spool.name)
            sha = file_sha256(path)
            kept = store.get(sha)  # a read from this thread: at worst unpacked twice, kept once
            return kept if kept is not None else store.unpack(path, sha=sha)

    # -- functions -------------------------------------------------------------------------
    async def create_function(self, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = doc.get("FunctionName")
        if not isinstance(name, str) or FUNCTION_NAME.fullmatch(name) is None:
            raise invalid("FunctionName must be 1 to 64 letters, digits, '-' and '_'")
        if doc.get("PackageType", "Zip") != "Zip":
            raise invalid("this local platform runs zip packages (PackageType Zip), not "
                          "container images")
        try:
            config = _parse_config(doc, FunctionConfig(name=name, target=""), creating=True)
            tags = _tags(doc.get("Tags", {}))
            publish = bool(doc.get("Publish", False))
        except ValueError as exc:
            raise invalid(str(exc)) from None
        if "Code" not in doc:
            raise invalid("Code is required")
        self._check_launcher()
        if name in self.platform.functions:
            raise conflict(f"Function already exist: {name}")
        fn = Function(config, self.platform)
        fn.lambda_state, fn.tags = "Pending", tags
        self.platform.add(fn)  # the name is taken while the package unpacks
        try:
            package = await self._package(doc["Code"])
        except BaseException:
            if self.platform.functions.get(name) is fn:
                self.platform.delete(fn)
            raise
        if fn.deleted:  # deleted while it was being created
            self.platform.spawn_task(self.platform.collect_code())
            raise conflict(f"Function {name} was deleted while it was being created")
        fn.config = dataclasses.replace(fn.config, code=package)
        fn.lambda_state = "Active"
        fn.touched()
        note = arch_note(config.architecture)
        if note:
            log.info("function %s: %s", name, note)
        answer = fn.publish() if publish else fn
        return 201, configuration(answer, self.region)

    async def get_function(self, name: str, qualifier: str | None) -> dict[str, Any]:
        fn = self.lookup(name, qualifier)
        out: dict[str, Any] = {"Configuration": configuration(fn, self.region),
                               "Code": {"RepositoryType": "S3"}, "Tags": dict(fn.family.tags)}
        reserved = fn.family.config.reserved_concurrency
        if reserved is not None:
            out["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
        return out

    async def get_configuration(self, name: str, qualifier: str | None) -> dict[str, Any]:
        return configuration(self.lookup(name, qualifier), self.region)

    async def list_functions(self, query: Mapping[str, str]) -> dict[str, Any]:
        every = query.get("FunctionVersion") == "ALL"
        listed = []
        for fname in sorted(self.platform.functions):
            fn = self.platform.functions[fname]
            listed.append(fn)
            if every:
                listed.extend(fn.versions[v] for v in sorted(fn.versions, key=int))
        return self._page([configuration(f, self.region) for f in listed], "Functions", query)

    async def list_versions(self, name: str, query: Mapping[str, str]) -> dict[str, Any]:
        fn = self.unqualified(name)
        listed = [fn, *(fn.versions[v] for v in sorted(fn.versions, key=int))]
        return self._page([configuration(f, self.region) for f in listed], "Versions", query)

    @staticmethod
    def _page(items: list[dict[str, Any]], key: str, query: Mapping[str, str]
              ) -> dict[str, Any]:
        try:
            start = int(query.get("Marker") or 0)
            size = int(query.get("MaxItems") or 50)
        except ValueError:
            raise invalid("Marker and MaxItems must be integers") from None
        if not 1 <= size <= 10000 or start < 0:
            raise invalid("MaxItems is 1..10000")
        out: dict[str, Any] = {key: items[start:start + size]}
        if start + size < len(items):
            out["NextMarker"] = str(start + size)
        return out

    async def update_code(self, name: str, doc: dict[str, Any]) -> dict[str, Any]:
        fn = self.unqualified(name)
        self._check_revision(fn, doc)
        self._check_idle(fn)
        self._check_launcher()
        try:
            arch = (_architecture(doc["Architectures"]) if "Architectures" in doc
                    else fn.config.architecture)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        code = {k: doc[k] for k in ("ZipFile", "S3Bucket", "S3Key", "S3ObjectVersion",
                                    "ImageUri") if k in doc}
        fn.updating = True
        try:
            package = await self._package(code)
        finally:
            fn.updating = False
        if fn.deleted:
            self.platform.spawn_task(self.platform.collect_code())
            raise not_found(f"Function not found: {fn.config.arn(self.region)}")
        if doc.get("DryRun"):
            self.platform.spawn_task(self.platform.collect_code())
            return configuration(fn, self.region)
        await fn.update(code=package, architecture=arch)
        self.platform.spawn_task(self.platform.collect_code())  # the code it ran before
        answer = fn.publish() if doc.get("Publish") else fn
        return configuration(answer, self.region)

    async def update_configuration(self, name: str, doc: dict[str, Any]) -> dict[str, Any]:
        fn = self.unqualified(name)
        self._check_revision(fn, doc)
        self._check_idle(fn)
        try:
            config = _parse_config(doc, fn.config, creating=False)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        changes = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                   if getattr(config, f.name) != getattr(fn.config, f.name)}
        await fn.update(**changes)
        return configuration(fn, self.region)

    async def delete_function(self, name: str, qualifier: str | None) -> None:
        fn = self.lookup(name, qualifier)
        if fn.latest is None and (qualifier == LATEST or split_name(name)[1] == LATEST):
            raise invalid("$LATEST version cannot be deleted without deleting the function.")
        self.platform.delete(fn)

    async def publish_version(self, name: str, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fn = self.unqualified(name)
        self._check_revision(fn, doc)
        self._check_idle(fn)
        sha = doc.get("CodeSha256")
        current = fn.config.code.code_sha256 if fn.config.code is not None else ""
        if sha is not None and sha != current:
            raise invalid(f"CodeSHA256 ({str(sha)[:64]}) is different from current CodeSHA256 "
                          f"in $LATEST ({current}). Please try again")
        description = doc.get("Description")
        if description is not None and not isinstance(description, str):
            raise invalid("Description must be a string")
        return 201, configuration(fn.publish(description), self.region)

    # -- tags ------------------------------------------------------------------------------
    async def list_tags(self, arn: str) -> dict[str, Any]:
        return {"Tags": dict(self.by_arn(arn).tags)}

    async def tag_resource(self, arn: str, doc: dict[str, Any]) -> None:
        fn = self.by_arn(arn)
        try:
            tags = _tags(doc.get("Tags"))
        except ValueError as exc:
            raise invalid(str(exc)) from None
        merged = {**fn.tags, **tags}
        if len(merged) > MAX_TAGS:
            raise invalid(f"a function has at most {MAX_TAGS} tags")
        fn.tags = merged

    async def untag_resource(self, arn: str, keys: list[str]) -> None:
        fn = self.by_arn(arn)
        fn.tags = {k: v for k, v in fn.tags.items() if k not in keys}

    # -- concurrency -----------------------------------------------------------------------
    async def put_concurrency(self, name: str, doc: dict[str, Any]) -> dict[str, Any]:
        fn = self.unqualified(name)
        try:
            if "ReservedConcurrentExecutions" not in doc:
                raise ValueError("ReservedConcurrentExecutions is required")
            n = _integer(doc, "ReservedConcurrentExecutions")
            if n < 0:
                raise ValueError("reserved concurrency cannot be negative")
            provisioned = sum(v.config.provisioned_concurrency for v in fn.versions.values())
            if n < provisioned:
                raise ValueError(f"ReservedConcurrentExecutions ({n}) is less than the "
                                 f"function's provisioned concurrency ({provisioned})")
            others = sum(f.config.reserved_concurrency or 0
                         for f in self.platform.functions.values() if f is not fn)
            room = self.platform.account_concurrency - UNRESERVED_MINIMUM - others
            if n > room:
                raise ValueError(
                    "Specified ReservedConcurrentExecutions for function decreases account's "
                    f"UnreservedConcurrentExecution below its minimum value of "
                    f"[{UNRESERVED_MINIMUM}].")
            fn.config = dataclasses.replace(fn.config, reserved_concurrency=n)  # validates
        except ValueError as exc:
            raise invalid(str(exc)) from None
        return {"ReservedConcurrentExecutions": n}

    async def get_concurrency(self, name: str) -> dict[str, Any]:
        reserved = self.unqualified(name).config.reserved_concurrency
        return {} if reserved is None else {"ReservedConcurrentExecutions": reserved}

    async def delete_concurrency(self, name: str) -> None:
        fn = self.unqualified(name)
        fn.config = dataclasses.replace(fn.config, reserved_concurrency=None)

    def _version(self, name: str, qualifier: str | None) -> Function:
        if split_name(name)[1] is None and not qualifier:
            raise invalid("Qualifier is required: provisioned concurrency is set on a version")
        fn = self.lookup(name, qualifier)
        if fn.latest is None:
            raise invalid("Provisioned Concurrency Configs cannot be applied to unpublished "
                          "function versions.")
        return fn

    def _provisioned(self, fn: Function) -> dict[str, Any]:
        allocated = sum(1 for s in fn.sandboxes.values() if s.provisioned and s.initialized)
        status = fn.provisioned_status()
        out: dict[str, Any] = {
            "RequestedProvisionedConcurrentExecutions": fn.config.provisioned_concurrency,
            "AvailableProvisionedConcurrentExecutions": allocated,
            "AllocatedProvisionedConcurrentExecutions": allocated,
            "Status": status, "LastModified": _iso(fn.last_modified)}
        if status == "FAILED" and fn.provisioning_error:
            out["StatusReason"] = fn.provisioning_error
        return out

    async def put_provisioned(self, name: str, qualifier: str | None, doc: dict[str, Any]
                              ) -> tuple[int, dict[str, Any]]:
        fn = self._version(name, qualifier)
        try:
            if "ProvisionedConcurrentExecutions" not in doc:
                raise ValueError("ProvisionedConcurrentExecutions is required")
            n = _integer(doc, "ProvisionedConcurrentExecutions")
            if n < 1:
                raise ValueError("ProvisionedConcurrentExecutions must be at least 1")
            family = fn.family
            others = sum(v.config.provisioned_concurrency for v in family.versions.values()
                         if v is not fn)
            cap = family.config.reserved_concurrency
            if cap is not None and others + n > cap:
                raise ValueError(f"the function's provisioned concurrency ({others + n}) would "
                                 f"pass its reserved concurrency ({cap})")
            if n < fn.config.provisioned_concurrency:
                fn.deprovision()
            fn.config = dataclasses.replace(fn.config, provisioned_concurrency=n)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        fn.last_modified = time.time()
        fn.start_provisioning()
        return 202, self._provisioned(fn)

    async def get_provisioned(self, name: str, qualifier: str | None) -> dict[str, Any]:
        fn = self._version(name, qualifier)
        if fn.config.provisioned_concurrency == 0:
            raise ApiError(404, "ProvisionedConcurrencyConfigNotFoundException",
                           "No Provisioned Concurrency Config found for this function")
        return self._provisioned(fn)

    async def delete_provisioned(self, name: str, qualifier: str | None) -> None:
        fn = self._version(name, qualifier)
        if fn.config.provisioned_concurrency == 0:
            raise ApiError(404, "ProvisionedConcurrencyConfigNotFoundException",
                           "No Provisioned Concurrency Config found for this function")
        fn.deprovision()


def _zip_bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise invalid("Code.ZipFile must be the zip's bytes (base64 in the request)")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Could not unzip uploaded file. Please check your file, then try to "
                      "upload again. (ZipFile is not base64)") from None
    if len(data) > ZIP_UPLOAD_LIMIT:
        raise ApiError(413, "RequestTooLargeException",
                       f"Zipped size must be smaller than {ZIP_UPLOAD_LIMIT} bytes when uploaded "
                       "directly; upload it to S3 and give S3Bucket and S3Key")
    return data


__all__ = ["GUARDED_ENVIRONMENT", "ApiError", "ControlPlane", "S3Source", "api_environment",
           "arch_note", "configuration"]
