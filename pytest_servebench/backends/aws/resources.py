"""What a run creates in an AWS account: named with the run's prefix, tagged with the run's id,
its owner and its creation time, recorded in creation order, removed in reverse.

Every resource carries the tags ``servebench:run-id``, ``servebench:owner`` and
``servebench:created`` (ISO 8601, UTC), so ``servebench aws sweep`` finds what a dead run left
through the tagging API (and IAM's and ECR's own tag listings, which that API does not cover).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("servebench.aws")

TAG_RUN = "servebench:run-id"
TAG_OWNER = "servebench:owner"
TAG_CREATED = "servebench:created"
NAME_PREFIX = "sb-"
_SAFE = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True, slots=True)
class RunTags:
    """The run's identity in the account. ``prefix`` starts every name the run gives."""

    run_id: str
    owner: str
    created_unix: float

    @classmethod
    def new(cls, *, owner: str | None = None) -> RunTags:
        run_id = time.strftime("%y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(2)
        if owner is None:
            user = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
            owner = f"{user}@{socket.gethostname()}"
        return cls(run_id=run_id, owner=owner[:128], created_unix=time.time())

    @property
    def prefix(self) -> str:
        return f"{NAME_PREFIX}{self.run_id}-"

    @property
    def created_iso(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_unix))

    def name(self, what: str, *, max_len: int = 64) -> str:
        """``sb-<run id>-<what>``: lower case, letters, digits and dashes (valid for functions,
        roles, buckets, log groups and repositories alike), at most ``max_len`` characters."""
        tail = _SAFE.sub("-", what.lower()).strip("-") or "x"
        name = self.prefix + tail
        if len(name) > max_len:  # keep it unique: cut, then a short hash of what was cut
            import hashlib

            digest = hashlib.sha256(tail.encode()).hexdigest()[:6]
            name = name[: max_len - 7].rstrip("-") + "-" + digest
        return name

    def as_dict(self) -> dict[str, str]:
        return {TAG_RUN: self.run_id, TAG_OWNER: self.owner, TAG_CREATED: self.created_iso}

    def as_list(self) -> list[dict[str, str]]:
        """The tags as IAM, ECR and S3 take them (``[{"Key": ..., "Value": ...}]``)."""
        return [{"Key": k, "Value": v} for k, v in self.as_dict().items()]


@dataclass(frozen=True, slots=True)
class Resource:
    """One thing the run created: ``kind`` (function, role, bucket, log_group, repository,
    instance, security_group, cluster, task_definition, task, model, endpoint_config,
    endpoint) and what identifies it to its service (a task: ``name`` its cluster, ``arn``
    the task)."""

    kind: str
    name: str
    arn: str = ""


@dataclass
class Ledger:
    """The run's resources in creation order; ``teardown`` removes them newest first and keeps
    going past failures (each is logged and returned), so one stuck resource does not strand
    the others."""

    resources: list[Resource] = field(default_factory=list)

    def add(self, resource: Resource) -> Resource:
        self.resources.append(resource)
        return resource

    def forget(self, resource: Resource) -> None:
        with contextlib.suppress(ValueError):
            self.resources.remove(resource)

    def teardown(self, remove: Callable[[Resource], None]) -> list[tuple[Resource, Exception]]:
        failures: list[tuple[Resource, Exception]] = []
        while self.resources:
            resource = self.resources.pop()
            try:
                remove(resource)
            except Exception as exc:  # keep removing the others; the sweeper is the net
                log.warning("could not remove %s %s: %s", resource.kind, resource.name, exc)
                failures.append((resource, exc))
        return failures


def error_code(exc: BaseException) -> str:
    """botocore's error code (``ResourceNotFoundException``...), or '' for other errors."""
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_gone(exc: BaseException) -> bool:
    """The resource does not exist (any service's way of saying so)."""
    return error_code(exc) in {"ResourceNotFoundException", "NoSuchEntity", "NoSuchBucket",
                               "RepositoryNotFoundException", "NotFoundException", "404",
                               "ProvisionedConcurrencyConfigNotFoundException",
                               "InvalidInstanceID.NotFound", "InvalidGroup.NotFound",
                               "ClusterNotFoundException"} or _sagemaker_gone(exc)


def _sagemaker_gone(exc: BaseException) -> bool:
    """SageMaker says a model, configuration or endpoint is gone with a ValidationException."""
    return error_code(exc) == "ValidationException" and "could not find" in str(exc).lower()
