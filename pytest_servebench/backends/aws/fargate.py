"""Fargate servers: the target's image (from the run's ECR repository) as a task of the size
asked, in the run's ECS cluster, with a public IP in the default VPC's subnet and the run's
security group (the caller's address on the serving port only).

>>> task_size(0.25, 0.5)
('256', '512')
"""

from __future__ import annotations

from typing import Any

ECS_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
     "Action": "sts:AssumeRole"}]}
# What the task's agent needs: pull the run's image, write its logs. Nothing else.
EXECUTION_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
    {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                   "ecr:BatchCheckLayerAvailability"],
     "Resource": "arn:aws:ecr:*:*:repository/sb-*"},
    {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
     "Resource": "arn:aws:logs:*:*:log-group:/servebench/sb-*"}]}
STOPPED = "STOPPED"


def task_size(vcpu: float, memory_gb: float) -> tuple[str, str]:
    """ECS's words for a task size: CPU units (1024 a vCPU) and MiB."""
    return str(round(vcpu * 1024)), str(round(memory_gb * 1024))


def ecs_tags(tags: list[dict[str, str]]) -> list[dict[str, str]]:
    """ECS spells tags in lower case (``key``/``value``)."""
    return [{"key": t["Key"], "value": t["Value"]} for t in tags]


def create_cluster(ecs: Any, *, name: str, tags: list[dict[str, str]]) -> str:
    return str(ecs.create_cluster(clusterName=name, tags=ecs_tags(tags))["cluster"]["clusterArn"])


def register_task_definition(ecs: Any, *, family: str, image: str, vcpu: float,
                             memory_gb: float, arch: str, port: int, command: list[str],
                             environment: dict[str, str], execution_role_arn: str,
                             log_group: str, region: str, tags: list[dict[str, str]]) -> str:
    """A task definition of one container serving on ``port``; its ARN. The container's
    ``memory`` is the task's (ECS requires one of memory/memoryReservation per container on
    some launch paths, and moto on all)."""
    cpu, memory = task_size(vcpu, memory_gb)
    got = ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu=cpu,
        memory=memory, executionRoleArn=execution_role_arn,
        runtimePlatform={"cpuArchitecture": "ARM64" if arch == "arm64" else "X86_64",
                         "operatingSystemFamily": "LINUX"},
        containerDefinitions=[{
            "name": "server", "image": image, "essential": True, "memory": int(memory),
            "command": command,
            "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
            "portMappings": [{"containerPort": port, "protocol": "tcp"}],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": log_group, "awslogs-region": region,
                "awslogs-stream-prefix": "server"}},
        }],
        tags=ecs_tags(tags))
    return str(got["taskDefinition"]["taskDefinitionArn"])


def run_task(ecs: Any, *, cluster: str, task_definition: str, subnet_id: str, group_id: str,
             tags: list[dict[str, str]]) -> str:
    got = ecs.run_task(
        cluster=cluster, taskDefinition=task_definition, launchType="FARGATE", count=1,
        networkConfiguration={"awsvpcConfiguration": {
            "subnets": [subnet_id], "securityGroups": [group_id], "assignPublicIp": "ENABLED"}},
        tags=ecs_tags(tags), propagateTags="TASK_DEFINITION")
    if got.get("failures") or not got.get("tasks"):
        raise RuntimeError(f"run_task in {cluster} failed: {got.get('failures')}")
    return str(got["tasks"][0]["taskArn"])


def describe_task(ecs: Any, cluster: str, task_arn: str) -> dict[str, Any]:
    tasks = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"]
    if not tasks:
        raise LookupError(f"task {task_arn} is not in {cluster}")
    task: dict[str, Any] = tasks[0]
    return task


def task_stopped(ecs: Any, cluster: str, task_arn: str) -> str | None:
    """Why waiting for the task is pointless (it stopped), or None."""
    task = describe_task(ecs, cluster, task_arn)
    if task.get("lastStatus") == STOPPED:
        return f"the task stopped: {task.get('stoppedReason', 'no reason given')}"
    return None


def public_address(ecs: Any, ec2: Any, cluster: str, task_arn: str) -> str:
    """The public IP of the task's network interface."""
    task = describe_task(ecs, cluster, task_arn)
    eni = next((d["value"] for a in task.get("attachments", [])
                for d in a.get("details", []) if d.get("name") == "networkInterfaceId"), None)
    if eni is None:
        raise LookupError(f"task {task_arn} has no network interface yet "
                          f"({task.get('lastStatus')})")
    ni = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    address = ni.get("Association", {}).get("PublicIp")
    if not address:
        raise LookupError(f"task {task_arn}'s interface {eni} has no public IP")
    return str(address)


def stop_task(ecs: Any, cluster: str, task_arn: str) -> None:
    ecs.stop_task(cluster=cluster, task=task_arn, reason="pytest-servebench: run ended")


def delete_cluster(ecs: Any, cluster: str) -> None:
    """Stop what still runs in it, then delete it."""
    for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster,
                                                         desiredStatus="RUNNING"):
        for arn in page.get("taskArns", []):
            stop_task(ecs, cluster, arn)
    ecs.delete_cluster(cluster=cluster)


def delete_task_definition(ecs: Any, arn: str) -> None:
    """Deregister (INACTIVE), then delete: an inactive definition otherwise stays forever."""
    from .resources import error_code

    try:
        ecs.deregister_task_definition(taskDefinition=arn)
    except Exception as exc:
        if error_code(exc) not in ("ClientException", "InvalidParameterException"):
            raise
    ecs.delete_task_definitions(taskDefinitions=[arn])
