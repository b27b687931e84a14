"""The study suites' server cases on the aws backend against the offline harness, as a user
runs ``pytest suites/ --servebench-backend=aws`` against an account.

Every server is provisioned through the control plane (moto: EC2 instances, Fargate tasks,
SageMaker endpoints) and removed through it. The data path is partly local, and these tests say
so: moto's servers run nothing, so the backend's address seam (``SERVEBENCH_AWS_SERVERS=loopback``)
serves each provisioned instance and task with a local ``servebench serve`` on loopback, and
SageMaker's ``InvokeEndpoint`` goes, signed, to a local stand-in of its runtime that verifies
the signature. Functions go to the local Lambda platform, as in ``test_suites_on_aws.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import Moto

ROOT = Path(__file__).resolve().parents[3]


def _suites(args: list[str], tmp_path: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--servebench-backend=aws",
         "-p", "no:cacheprovider", "-q", "-p", "no:randomly", "-rsf",
         f"--servebench-history={tmp_path / 'history.json'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=1500)
    (tmp_path / "suites.out").write_text(out.stdout + out.stderr)
    failed = "\n".join(line for line in out.stdout.splitlines() if line.startswith("FAILED"))
    text = failed + "\n" + out.stdout[-8000:] + out.stderr[-3000:]
    print(text)  # shown with -s, and on failure
    assert out.returncode == 0, text
    assert not re.search(r"\d+ (failed|error)", text), text
    return text


def _nothing_left() -> list[str]:
    import boto3

    from pytest_servebench.backends.aws.sweep import find_leftovers

    session = boto3.Session()
    left = [f"{x.resource.kind} {x.resource.name}" for x in find_leftovers(
        lambda service: session.client(service), older_than_s=None)
            if x.run_id != "000000000000dead" and x.run_id != "000000000000beef"]
    return left


def _measured(tmp_path: Path) -> list[dict[str, Any]]:
    """The target profiles of the results the run saved."""
    doc = json.loads((tmp_path / "history.json").read_text())
    return [e["target_profile"] for run in doc["runs"] for e in run["entries"]]


# (suite, --target, the results it saves, the key only a provisioned server's profile has)
SERVER_CASES = [
    ("suites/test_000_mobilenet_cost.py", "ec2", 6, "instance_id"),  # c5.large, t4g.medium
    ("suites/test_001_detection_architectures.py", "ec2", 1, "instance_id"),  # t2.small
    ("suites/test_003_lambda_vs_fargate.py", "fargate", 15, "task_arn"),  # 3 sizes
    ("suites/test_004_serving_bursts.py", "sagemaker", 3, "endpoint"),  # ml.c5.2xlarge
]


@pytest.mark.parametrize(("suite", "target", "results", "key"), SERVER_CASES,
                         ids=[f"{c[0].split('_')[1]}-{c[1]}" for c in SERVER_CASES])
def test_server_cases_of_a_study_are_provisioned_through_the_control_plane(
        loopback_servers: Moto, sagemaker_runtime: Any, tmp_path: Path, suite: str,
        target: str, results: int, key: str) -> None:
    """Control plane: moto. Data path: local servers on loopback standing in for the
    provisioned ones (moto's run nothing); SageMaker through a SigV4-checking local runtime."""
    _suites([suite, f"--target={target}"], tmp_path)
    profiles = [p for p in _measured(tmp_path) if p.get("platform") == target]
    assert len(profiles) >= results, profiles
    for profile in profiles:
        assert profile["backend"] == "aws" and key in profile, profile
        assert profile["usd_per_hour"] > 0 and "address_note" in profile, profile
    assert _nothing_left() == []



def test_the_whole_main_job_runs_on_the_aws_backend(
        loopback_servers: Moto, lambda_platform: Any, sagemaker_runtime: Any,
        tmp_path: Path) -> None:
    """``pytest suites/ --servebench-backend=aws``, every study at once, as a user runs it:
    control plane moto, functions on the local Lambda platform, servers on loopback stand-ins,
    SageMaker through the SigV4-checking runtime. What the stand-ins cannot run (container-image
    functions, a GPU here) is skipped with its reason, never failed; nothing is left after."""
    text = _suites(["suites/"], tmp_path)
    assert re.search(r"\d+ passed", text), text
    profiles = _measured(tmp_path)
    by_platform: dict[str, list[dict[str, Any]]] = {}
    for p in profiles:
        by_platform.setdefault(str(p.get("platform", "lambda")), []).append(p)
    # 000: c5.large, t4g.medium x3 concurrencies; 001: t2.small; 003: 3 sizes x 3 users;
    # 004: ml.c5.2xlarge x3 workloads; and the functions of every study.
    assert len(by_platform.get("ec2", [])) >= 7, sorted(by_platform)
    assert len(by_platform.get("fargate", [])) >= 9, sorted(by_platform)
    assert len(by_platform.get("sagemaker", [])) >= 3, sorted(by_platform)
    assert all(p["backend"] == "aws" for p in profiles)
    assert any("memory_mb" in p for p in profiles)  # functions measured too
    assert "container image" in text and "not AWS" in text  # the refusal said as a skip
    assert _nothing_left() == []
