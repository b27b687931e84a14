"""Find and remove what runs left in the account: ``servebench aws sweep``.

Resources are found by their ``servebench:run-id`` tag: through the Resource Groups Tagging API
(functions, buckets, log groups) and through IAM's and ECR's own tag listings (the tagging API
does not list roles, and not every account lists repositories there). A run is swept when it is
older than ``older_than_s`` (a live run on another machine is never touched by default) or when
its id is named.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .resources import NAME_PREFIX, TAG_CREATED, TAG_RUN, Resource, is_gone

# Removal order: what uses a thing goes before it.
_ORDER = {"function": 0, "log_group": 1, "bucket": 2, "repository": 3, "role": 4}


@dataclass(frozen=True, slots=True)
class Leftover:
    resource: Resource
    run_id: str
    created_unix: float | None

    def age_s(self, now: float) -> float | None:
        return None if self.created_unix is None else now - self.created_unix


def _created(tags: dict[str, str]) -> float | None:
    raw = tags.get(TAG_CREATED)
    if not raw:
        return None
    try:
        return float(calendar.timegm(time.strptime(raw, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def resource_of_arn(arn: str) -> Resource | None:
    """The resource an ARN names, for the kinds a run creates; None for others."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return None
    service, rest = parts[2], parts[5]
    if service == "lambda" and rest.startswith("function:"):
        return Resource("function", rest.split(":")[1], arn)
    if service == "s3" and rest and "/" not in rest:
        return Resource("bucket", rest, arn)
    if service == "logs" and rest.startswith("log-group:"):
        name = rest[len("log-group:"):]
        return Resource("log_group", name[:-2] if name.endswith(":*") else name, arn)
    if service == "ecr" and rest.startswith("repository/"):
        return Resource("repository", rest[len("repository/"):], arn)
    if service == "iam" and rest.startswith("role/"):
        return Resource("role", rest.rsplit("/", 1)[-1], arn)
    return None


def _tagging(client: Callable[[str], Any]) -> Iterable[Leftover]:
    api = client("resourcegroupstaggingapi")
    for page in api.get_paginator("get_resources").paginate(TagFilters=[{"Key": TAG_RUN}]):
        for item in page.get("ResourceTagMappingList", []):
            resource = resource_of_arn(item["ResourceARN"])
            if resource is None:
                continue
            tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
            yield Leftover(resource, tags.get(TAG_RUN, ""), _created(tags))


def _roles(client: Callable[[str], Any]) -> Iterable[Leftover]:
    iam = client("iam")
    for page in iam.get_paginator("list_roles").paginate():
        for role in page.get("Roles", []):
            if not role["RoleName"].startswith(NAME_PREFIX):
                continue
            tags = {t["Key"]: t["Value"]
                    for t in iam.list_role_tags(RoleName=role["RoleName"]).get("Tags", [])}
            if TAG_RUN in tags:
                yield Leftover(Resource("role", role["RoleName"], role["Arn"]), tags[TAG_RUN],
                               _created(tags))


def _repositories(client: Callable[[str], Any]) -> Iterable[Leftover]:
    ecr = client("ecr")
    for page in ecr.get_paginator("describe_repositories").paginate():
        for repo in page.get("repositories", []):
            if not repo["repositoryName"].startswith(NAME_PREFIX):
                continue
            tags = {t["Key"]: t["Value"] for t in ecr.list_tags_for_resource(
                resourceArn=repo["repositoryArn"]).get("tags", [])}
            if TAG_RUN in tags:
                yield Leftover(Resource("repository", repo["repositoryName"],
                                        repo["repositoryArn"]), tags[TAG_RUN], _created(tags))


def _functions(client: Callable[[str], Any]) -> Iterable[Leftover]:
    """Lambda's own listing: the tagging API of an account lists functions too, but a Lambda
    endpoint of its own (the local platform standing in for AWS) is seen only here."""
    lam = client("lambda")
    for page in lam.get_paginator("list_functions").paginate():
        for fn in page.get("Functions", []):
            if not fn["FunctionName"].startswith(NAME_PREFIX):
                continue
            tags = lam.list_tags(Resource=fn["FunctionArn"]).get("Tags", {})
            if TAG_RUN in tags:
                yield Leftover(Resource("function", fn["FunctionName"], fn["FunctionArn"]),
                               tags[TAG_RUN], _created(tags))


def find_leftovers(client: Callable[[str], Any], *, run_id: str | None = None,
                   older_than_s: float | None = None,
                   now: float | None = None) -> list[Leftover]:
    """Tagged resources of runs named by ``run_id`` or older than ``older_than_s``, in the
    order they can be removed."""
    now = time.time() if now is None else now
    seen: dict[tuple[str, str], Leftover] = {}
    for finder in (_tagging, _functions, _roles, _repositories):
        for left in finder(client):
            seen.setdefault((left.resource.kind, left.resource.name), left)
    chosen = []
    for left in seen.values():
        if run_id is not None and left.run_id != run_id:
            continue
        if older_than_s is not None:
            age = left.age_s(now)
            if age is None or age < older_than_s:
                continue
        chosen.append(left)
    return sorted(chosen, key=lambda x: (_ORDER.get(x.resource.kind, 9), x.resource.name))


def sweep(client: Callable[[str], Any], leftovers: Iterable[Leftover]) -> list[
        tuple[Leftover, Exception]]:
    """Remove ``leftovers``; returns those that could not be removed, with why."""
    from . import remove_resource

    failures: list[tuple[Leftover, Exception]] = []
    for left in leftovers:
        try:
            remove_resource(client, left.resource)
        except Exception as exc:
            if not is_gone(exc):
                failures.append((left, exc))
    return failures
