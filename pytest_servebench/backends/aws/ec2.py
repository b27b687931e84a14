"""EC2 servers: an instance of the type asked, booted from the public Amazon Linux 2023 AMI of
its architecture (a GPU type from the public Deep Learning base AMI), whose user data fetches the
target's package and this plugin's code from the run's bucket (presigned URLs: the instance needs
no role) and starts ``servebench serve`` on the serving port; a security group of the run whose
only ingress is the caller's own address on that port.

>>> ami_parameter("arm64", gpu=None)
'/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64'
"""

from __future__ import annotations

import hashlib
import shlex
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Public SSM parameters AWS keeps pointing at the newest AMI of each kind.
AMI_PARAMETERS = {
    "x86_64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "arm64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
GPU_AMI_PARAMETER = ("/aws/service/deeplearning/ami/x86_64/"
                     "base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id")
USER_DATA_LIMIT = 16 * 1024  # EC2's limit on user data, before base64
PRESIGN_S = 6 * 3600  # the instance fetches its code once, at boot; a slow boot still finds it
SERVE_LOG = "/var/log/servebench-serve.log"


def ami_parameter(arch: str, *, gpu: str | None) -> str:
    if gpu is not None:
        if arch != "x86_64":
            raise ValueError(f"GPU instances here are x86_64, not {arch}")
        return GPU_AMI_PARAMETER
    try:
        return AMI_PARAMETERS[arch]
    except KeyError:
        raise ValueError(f"EC2 architectures are {', '.join(AMI_PARAMETERS)}, not "
                         f"{arch!r}") from None


def resolve_ami(ssm: Any, arch: str, *, gpu: str | None) -> str:
    """The AMI id the public parameter names today."""
    name = ami_parameter(arch, gpu=gpu)
    return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])


def code_zip() -> Path:
    """This plugin's own code as a zip named by its content (what the instance imports
    ``servebench serve`` from: the same version as the caller's)."""
    import pytest_servebench

    root = Path(pytest_servebench.__file__).resolve().parent
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    files += sorted(p for p in (root / "data").glob("*") if p.is_file())
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(root)).encode())
        digest.update(p.read_bytes())
    out = Path(tempfile.gettempdir()) / f"servebench-code-{digest.hexdigest()[:16]}.zip"
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for p in files:
                info = zipfile.ZipInfo(f"pytest_servebench/{p.relative_to(root)}",
                                       date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, p.read_bytes())
        tmp.replace(out)
    return out


def user_data(target: str, *, package_url: str, code_url: str, model_file: str, port: int,
              workers: int, threads: int | None, arch: str,
              environment: dict[str, str] | None = None, gpu: str | None = None) -> str:
    """The boot script: fetch, unpack, start ``servebench serve`` on ``port``, log to the
    console (what ``get_console_output`` shows when the instance never gets ready).
    ``environment``: what the server is started with (a model to load from S3 replaces the
    package's). ``gpu`` (the instance's, e.g. ``T4``): ONNX Runtime's CUDA build with its CUDA
    and cuDNN wheels goes first on the path, and the server must run on the GPU
    (``SERVEBENCH_DEVICE=cuda``: it fails to start rather than serve on the CPU)."""
    device = {"SERVEBENCH_DEVICE": "cuda" if gpu else "cpu"}
    exports = "".join(f"export {k}={shlex.quote(v)}\n"
                      for k, v in sorted({**device, **(environment or {})}.items()))
    model = ("" if environment and "SERVEBENCH_MODEL_URL" in environment else
             f"export SERVEBENCH_MODEL_PATH=/opt/servebench/task/{shlex.quote(model_file)}\n")
    serve = ["python3.11", "-m", "pytest_servebench.cli", "serve", target, "--host", "0.0.0.0",
             "--port", str(port), "--workers", str(workers)]
    if threads:
        serve += ["--threads", str(threads)]
    # The package's distributions are Lambda's x86_64 wheels; an arm64 instance installs its
    # own (pip puts them first on the path).
    own_wheels = ("python3.11 -m pip install --quiet --target /opt/servebench/arch "
                  "onnxruntime numpy pillow\n" if arch == "arm64" else "")
    if gpu:  # the CUDA build shares the module name with the package's CPU one: it goes first
        own_wheels += ("python3.11 -m pip install --quiet --target /opt/servebench/arch "
                       "'onnxruntime-gpu[cuda,cudnn]'\n")
    script = f"""#!/bin/bash
set -euxo pipefail
exec > >(tee /var/log/servebench-boot.log > /dev/console) 2>&1
dnf install -y python3.11 python3.11-pip unzip
mkdir -p /opt/servebench/arch && cd /opt/servebench
curl -fsSL --retry 5 -o package.zip {shlex.quote(package_url)}
curl -fsSL --retry 5 -o code.zip {shlex.quote(code_url)}
unzip -q -o package.zip -d task && unzip -q -o code.zip -d code
python3.11 -m pip install --quiet uvicorn
{own_wheels}export PYTHONPATH=/opt/servebench/arch:/opt/servebench/code:/opt/servebench/task
{model}{exports}nohup {shlex.join(serve)} > {SERVE_LOG} 2>&1 &
"""
    if len(script.encode()) > USER_DATA_LIMIT:
        raise ValueError(f"user data of {len(script.encode())} bytes is over EC2's "
                         f"{USER_DATA_LIMIT}")
    return script


def default_vpc(ec2: Any) -> str:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise LookupError("this region has no default VPC: give a subnet and security group")
    return str(vpcs[0]["VpcId"])


def default_subnet(ec2: Any, vpc_id: str) -> str:
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                            {"Name": "default-for-az", "Values": ["true"]}])
    found = subnets["Subnets"] or ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    if not found:
        raise LookupError(f"the default VPC {vpc_id} has no subnet")
    return str(sorted(found, key=lambda s: s["SubnetId"])[0]["SubnetId"])


def security_group(ec2: Any, *, name: str, vpc_id: str, caller_cidr: str, port: int,
                   tags: list[dict[str, str]]) -> str:
    """A group whose only ingress is ``caller_cidr`` on ``port`` (TCP); its id."""
    group = ec2.create_security_group(
        GroupName=name, VpcId=vpc_id,
        Description="pytest-servebench: the caller's address on the serving port only",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}])
    group_id = str(group["GroupId"])
    v6 = ":" in caller_cidr
    ranges = ({"Ipv6Ranges": [{"CidrIpv6": caller_cidr, "Description": "servebench caller"}]}
              if v6 else {"IpRanges": [{"CidrIp": caller_cidr,
                                        "Description": "servebench caller"}]})
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **ranges}])
    return group_id


EC2_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
     "Action": "sts:AssumeRole"}]}


def models_policy(bucket: str) -> dict[str, Any]:
    """Read the run's models, nothing else."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": f"arn:aws:s3:::{bucket}/models/*"}]}


INSTANCE_PROFILE_PROPAGATION_S = 60.0  # a new instance profile is refused for a few seconds


def run_instance(ec2: Any, *, ami: str, instance_type: str, group_id: str, subnet_id: str,
                 script: str, name: str, tags: list[dict[str, str]],
                 instance_profile_arn: str | None = None) -> str:
    """One instance with a public address (and ``instance_profile_arn``'s role); its id. A
    new instance profile is retried while IAM propagates it."""
    import time

    from .resources import error_code

    extra: dict[str, Any] = ({"IamInstanceProfile": {"Arn": instance_profile_arn}}
                             if instance_profile_arn else {})
    deadline = time.monotonic() + INSTANCE_PROFILE_PROPAGATION_S
    while True:
        try:
            return _run_instance(ec2, ami=ami, instance_type=instance_type, group_id=group_id,
                                 subnet_id=subnet_id, script=script, name=name, tags=tags,
                                 extra=extra)
        except Exception as exc:
            propagating = "iam instance profile" in str(exc).lower()
            if not (extra and error_code(exc) == "InvalidParameterValue" and propagating
                    and time.monotonic() < deadline):
                raise
            time.sleep(3.0)


def _run_instance(ec2: Any, *, ami: str, instance_type: str, group_id: str, subnet_id: str,
                  script: str, name: str, tags: list[dict[str, str]],
                  extra: dict[str, Any]) -> str:
    got = ec2.run_instances(**extra,
        ImageId=ami, InstanceType=instance_type, MinCount=1, MaxCount=1, UserData=script,
        InstanceInitiatedShutdownBehavior="terminate",  # a shutdown is never a stopped bill
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet_id, "Groups": [group_id],
                            "AssociatePublicIpAddress": True}],
        MetadataOptions={"HttpTokens": "required"},
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [*tags, {"Key": "Name", "Value": name}]},
                           {"ResourceType": "volume", "Tags": tags}])
    return str(got["Instances"][0]["InstanceId"])


def public_address(ec2: Any, instance_id: str) -> str:
    got = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    address = got.get("PublicIpAddress")
    if not address:
        raise LookupError(f"instance {instance_id} has no public address (state "
                          f"{got['State']['Name']})")
    return str(address)


def instance_state(ec2: Any, instance_id: str) -> str:
    got = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return str(got["State"]["Name"])


def console_output(ec2: Any, instance_id: str) -> Callable[[], str]:
    """The instance's console, for a failed wait's message (its last 4,000 characters)."""

    def read() -> str:
        try:
            out = ec2.get_console_output(InstanceId=instance_id, Latest=True).get("Output", "")
        except Exception as exc:  # the message must not hide the wait's own failure
            return f"(console output of {instance_id} unavailable: {exc})"
        text = str(out or "(empty: the console is written a few minutes after boot)")
        return f"console output of {instance_id}:\n{text[-4000:]}"

    return read


def terminate(ec2: Any, instance_id: str, *, timeout_s: float = 600.0) -> None:
    """Terminate and wait until terminated (its security group cannot go before it)."""
    ec2.terminate_instances(InstanceIds=[instance_id])
    delay = 5
    ec2.get_waiter("instance_terminated").wait(
        InstanceIds=[instance_id],
        WaiterConfig={"Delay": delay, "MaxAttempts": max(1, int(timeout_s / delay))})


def delete_security_group(ec2: Any, group_id: str, *, timeout_s: float = 300.0) -> None:
    """Delete, retrying while a just-terminated instance's or task's interface still holds it."""
    import time

    from .resources import error_code

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ec2.delete_security_group(GroupId=group_id)
            return
        except Exception as exc:
            if error_code(exc) != "DependencyViolation" or time.monotonic() > deadline:
                raise
            time.sleep(5.0)
