"""A session on the aws backend killed mid-run (SIGKILL: no teardown runs) leaves resources in
the account; ``servebench aws sweep`` finds them by their tags and removes them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_servebench.backends.aws.sweep import find_leftovers

from .conftest import Moto
from .test_option_backend_aws import TINY_PACKAGE


def _leftovers() -> list[Any]:
    import boto3

    session = boto3.Session()
    return find_leftovers(lambda service: session.client(service), older_than_s=None)


def test_a_killed_session_is_swept(pytester: pytest.Pytester, aws_env: Moto,
                                   lambda_platform: Any, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import boto3

    from pytest_servebench.cli import main

    before = {(x.resource.kind, x.resource.name) for x in _leftovers()}
    marker = tmp_path / "deployed"
    pytester.makeconftest(TINY_PACKAGE)
    pytester.makepyfile(f"""
import time

def test_deploys_then_hangs(servebench_backend):
    servebench_backend.function("text_rf", memory_mb=512)
    open({str(marker)!r}, "w").close()
    time.sleep(300)
""")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "--servebench-backend=aws", "--servebench-no-save"],
                            cwd=pytester.path, env={**os.environ}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
            assert time.monotonic() < deadline, "the child never deployed"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    left = [x for x in _leftovers() if (x.resource.kind, x.resource.name) not in before]
    assert sorted(x.resource.kind for x in left) == ["function", "log_group", "role"], left
    (run_id,) = {x.run_id for x in left}
    assert main(["aws", "sweep", "--run-id", run_id]) == 0
    assert "removed 3 of 3" in capsys.readouterr().out
    assert not [x for x in _leftovers() if x.run_id == run_id]
    assert not [f for f in boto3.client("lambda").list_functions()["Functions"]
                if f["FunctionName"].startswith(f"sb-{run_id}-")]
