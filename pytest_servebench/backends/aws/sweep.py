"""Find and remove what runs left in the account: ``servebench aws sweep``.

Resources are found by their ``servebench:run-id`` tag: through the Resource Groups Tagging API
(functions, buckets, log groups, EC2 instances and security groups, ECS clusters, task
definitions and tasks) and through IAM's, ECR's and SageMaker's own tag listings (the tagging
API does not list roles, not every account lists repositories there, and moto's tagging API
fails outright on SageMaker resources, so it is asked only for the types above). The tagging
API keeps listing what is already gone for a while (terminated instances, inactive clusters and
task definitions, stopped tasks): those are not leftovers. A run is swept when it is
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
_ORDER = {"function": 0, "endpoint": 0, "instance": 0, "task": 0, "endpoint_config": 1,
          "task_definition": 1, "model": 2, "cluster": 2, "log_group": 3, "security_group": 4,
          "bucket": 5, "repository": 6, "instance_profile": 7, "role": 8}
TAGGED_TYPES = ["lambda:function", "s3", "logs", "ecr:repository", "ec2:instance",
                "ec2:security-group", "ecs:cluster", "ecs:task-definition", "ecs:task"]


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
    if service == "ec2" and rest.startswith("instance/"):
        return Resource("instance", rest[len("instance/"):], arn)
    if service == "ec2" and rest.startswith("security-group/"):
        return Resource("security_group", rest[len("security-group/"):], arn)
    if service == "ecs" and rest.startswith("cluster/"):
        return Resource("cluster", rest[len("cluster/"):], arn)
    if service == "ecs" and rest.startswith("task-definition/"):
        return Resource("task_definition", rest[len("task-definition/"):].split(":")[0], arn)
    if service == "ecs" and rest.startswith("task/") and rest.count("/") == 2:
        return Resource("task", rest.split("/")[1], arn)  # task/<cluster>/<id>
    if service == "sagemaker":
        kind, _, name = rest.partition("/")
        kinds = {"model": "model", "endpoint-config": "endpoint_config", "endpoint": "endpoint"}
        if kind in kinds and name:
            return Resource(kinds[kind], name, arn)
    return None


def _tagging(client: Callable[[str], Any]) -> Iterable[Leftover]:
    api = client("resourcegroupstaggingapi")
    for page in api.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": TAG_RUN}], ResourceTypeFilters=TAGGED_TYPES):
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


def _instance_profiles(client: Callable[[str], Any]) -> Iterable[Leftover]:
    iam = client("iam")
    for page in iam.get_paginator("list_instance_profiles").paginate():
        for got in page.get("InstanceProfiles", []):
            name = got["InstanceProfileName"]
            if not name.startswith(NAME_PREFIX):
                continue
            # GetInstanceProfile carries the tags (moto has no ListInstanceProfileTags)
            tags = {t["Key"]: t["Value"] for t in iam.get_instance_profile(
                InstanceProfileName=name)["InstanceProfile"].get("Tags", [])}
            if TAG_RUN in tags:
                yield Leftover(Resource("instance_profile", name, got["Arn"]), tags[TAG_RUN],
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


def _sagemaker(client: Callable[[str], Any]) -> Iterable[Leftover]:
    sm = client("sagemaker")
    listings = (("list_endpoints", "Endpoints", "EndpointName", "EndpointArn", "endpoint"),
                ("list_endpoint_configs", "EndpointConfigs", "EndpointConfigName",
                 "EndpointConfigArn", "endpoint_config"),
                ("list_models", "Models", "ModelName", "ModelArn", "model"))
    for op, key, name_key, arn_key, kind in listings:
        for page in sm.get_paginator(op).paginate(NameContains=NAME_PREFIX):
            for item in page.get(key, []):
                if not item[name_key].startswith(NAME_PREFIX):
                    continue
                tags = {t["Key"]: t["Value"]
                        for t in sm.list_tags(ResourceArn=item[arn_key]).get("Tags", [])}
                if TAG_RUN in tags:
                    yield Leftover(Resource(kind, item[name_key], item[arn_key]),
                                   tags[TAG_RUN], _created(tags))


def _alive(client: Callable[[str], Any], resource: Resource) -> bool:
    """Whether a listed resource still exists in a state that costs or blocks something."""
    try:
        if resource.kind == "instance":
            got = client("ec2").describe_instances(InstanceIds=[resource.name])
            states = [i["State"]["Name"] for r in got["Reservations"] for i in r["Instances"]]
            return any(state != "terminated" for state in states)
        if resource.kind == "cluster":
            got = client("ecs").describe_clusters(clusters=[resource.name])
            return any(c.get("status") == "ACTIVE" for c in got.get("clusters", []))
        if resource.kind == "task_definition":
            got = client("ecs").describe_task_definition(taskDefinition=resource.arn)
            return bool(got["taskDefinition"].get("status") == "ACTIVE")
        if resource.kind == "task":
            got = client("ecs").describe_tasks(cluster=resource.name, tasks=[resource.arn])
            return any(t.get("lastStatus") != "STOPPED" for t in got.get("tasks", []))
    except Exception as exc:
        if is_gone(exc) or "not found" in str(exc).lower():
            return False
        raise
    return True


def find_leftovers(client: Callable[[str], Any], *, run_id: str | None = None,
                   older_than_s: float | None = None,
                   now: float | None = None) -> list[Leftover]:
    """Tagged resources of runs named by ``run_id`` or older than ``older_than_s``, in the
    order they can be removed."""
    now = time.time() if now is None else now
    seen: dict[tuple[str, str], Leftover] = {}
    for finder in (_tagging, _functions, _roles, _instance_profiles, _repositories,
                   _sagemaker):
        for left in finder(client):
            key = (left.resource.kind, left.resource.arn if left.resource.kind == "task"
                   else left.resource.name)
            seen.setdefault(key, left)
    chosen = []
    for left in seen.values():
        if run_id is not None and left.run_id != run_id:
            continue
        if older_than_s is not None:
            age = left.age_s(now)
            if age is None or age < older_than_s:
                continue
        if not _alive(client, left.resource):
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
