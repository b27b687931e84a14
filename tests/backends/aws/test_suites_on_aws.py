"""The main job on the aws backend: study 000's Lambda cases against the offline pair (moto +
the local Lambda platform, through boto3's endpoint variables), as a user runs them against an
account: ``pytest suites/test_000_mobilenet_cost.py --servebench-backend=aws --target=lambda``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from pytest_servebench.backends.aws.sweep import find_leftovers

from .conftest import Moto

ROOT = Path(__file__).resolve().parents[3]


def test_study_000_lambda_cases_pass_on_the_aws_backend(aws_env: Moto, lambda_platform: Any,
                                                        tmp_path: Path) -> None:
    import boto3

    out = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/test_000_mobilenet_cost.py",
         "--servebench-backend=aws", "--target=lambda", "-p", "no:cacheprovider", "-q",
         "-p", "no:randomly", "-rs", f"--servebench-history={tmp_path / 'history.json'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    text = out.stdout[-6000:] + out.stderr[-3000:]
    assert out.returncode == 0, text
    assert "4 passed" in text and not re.search(r"\d+ (failed|error)", text), text
    from pytest_servebench.history import History

    targets = {e.target for run in History.at(tmp_path / "history.json").runs()
               for e in run.entries}
    assert "lambda:s000-mobilenet-1024" in targets, targets  # the identity carries no run id
    session = boto3.Session()
    assert find_leftovers(lambda service: session.client(service), older_than_s=None) == []
    assert boto3.client("lambda").list_functions()["Functions"] == []
