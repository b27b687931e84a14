"""`servebench lambda [TARGET] --port P`: the platform in the foreground, for people and scripts;
with no target, an empty Lambda service whose functions are uploaded zips."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from pytest_servebench.backends.local.processes import free_port, servebench_processes
from pytest_servebench.functions.report import find_report

pytest.importorskip("awslambdaric", reason="the local Lambda platform needs [functions]")
boto3 = pytest.importorskip("boto3")
CLI = [sys.executable, "-m", "pytest_servebench.cli", "lambda"]


def _environment(**more: str) -> dict[str, str]:
    """This process's environment without AWS credentials (a developer's would be used)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **more}


def _client(port: int, key: str, secret: str) -> Any:
    from botocore.config import Config

    return boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}",
                        region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 0}))


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=60)[0].decode()


def _left_by(pid: int, timeout_s: float = 10) -> list[int]:
    """Live processes the command (``pid``) started, after a bounded wait; other sessions'
    are none of this test's business (other runs may share the machine)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = [p for p, env in servebench_processes().items()
                if env.get("SERVEBENCH_OWNER_PROCESS", "").startswith(f"{pid}.")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def test_serves_one_function_to_boto3_and_stops_clean_on_ctrl_c() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "text_rf", "--port", str(port), "--memory-mb", "1769",
         "--reserved-concurrency", "2", "--name", "bully"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_environment())
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert "function 'bully' (text_rf, 1769 MB;" in first and f":{port}" in first, first
        # Generated for the run and printed, ready to paste.
        second = proc.stdout.readline().decode()
        found = re.search(r"AWS_ACCESS_KEY_ID=(AKIA\w+) AWS_SECRET_ACCESS_KEY=(\S+)", second)
        assert found is not None, second
        lam = _client(port, found.group(1), found.group(2))
        r = lam.invoke(FunctionName="bully", Payload=json.dumps({"text": "you are awful"}),
                       LogType="Tail")
        body = json.loads(r["Payload"].read())
        assert body["label"] in ("bullying", "not_bullying")
        report = find_report(base64.b64decode(r["LogResult"]).decode())
        assert report is not None and report.cold_start and report.memory_size_mb == 1769
        assert lam.get_function_configuration(FunctionName="bully")["MemorySize"] == 1769
        assert _left_by(proc.pid, timeout_s=0) != []  # the leak check below sees its sandboxes
        stranger = _client(port, "AKIAEXAMPLEEXAMPLE", "x")
        with pytest.raises(stranger.exceptions.ClientError, match="UnrecognizedClient"):
            stranger.invoke(FunctionName="bully", Payload=b"{}")
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out
    assert "stopping" in out
    assert _left_by(proc.pid) == []


def test_credentials_from_the_environment_are_used_and_not_printed() -> None:
    port = free_port()
    secret = "s3cret-from-the-environment"
    proc = subprocess.Popen(
        [*CLI, "text_rf", "--port", str(port), "--memory-mb", "512"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=_environment(AWS_ACCESS_KEY_ID="AKIAMINEMINEMINE", AWS_SECRET_ACCESS_KEY=secret))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert f":{port}" in first, first
        assert "AKIAMINEMINEMINE" in proc.stdout.readline().decode()
        r = _client(port, "AKIAMINEMINEMINE", secret).invoke(
            FunctionName="text_rf", Payload=json.dumps({"text": "hello"}))
        assert r["StatusCode"] == 200
        wrong = _client(port, "AKIAMINEMINEMINE", "not-the-secret")
        with pytest.raises(wrong.exceptions.ClientError, match="InvalidSignature"):
            wrong.invoke(FunctionName="text_rf", Payload=b"{}")
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out
    assert secret not in out
    assert _left_by(proc.pid) == []


def test_bad_arguments_fail_before_anything_starts() -> None:
    started = time.monotonic()
    bad = subprocess.run([*CLI, "text_rf", "--memory-mb", "50"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "128..10240" in bad.stderr
    unknown = subprocess.run([*CLI, "nope"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "nope" in unknown.stderr
    assert time.monotonic() - started < 60


def test_other_hosts_need_allow_remote_and_chosen_credentials() -> None:
    remote = subprocess.run([*CLI, "text_rf", "--host", "0.0.0.0"], capture_output=True,
                            text=True, timeout=60, env=_environment())
    assert remote.returncode == 2
    assert "not a loopback address" in remote.stderr and "--allow-remote" in remote.stderr
    generated = subprocess.run([*CLI, "text_rf", "--host", "0.0.0.0", "--allow-remote"],
                               capture_output=True, text=True, timeout=60, env=_environment())
    assert generated.returncode == 2 and "AWS_ACCESS_KEY_ID" in generated.stderr
    helped = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=60)
    assert "DANGEROUS" in " ".join(helped.stdout.split())


def test_no_target_is_an_empty_service_that_runs_uploaded_zips_and_stops_clean() -> None:
    import glob
    import io
    import tempfile
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return {'answer': 42}\n")
    port = free_port()
    proc = subprocess.Popen([*CLI, "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=_environment())
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert "an empty Lambda service" in first and f":{port}" in first, first
        found = re.search(r"AWS_ACCESS_KEY_ID=(AKIA\w+) AWS_SECRET_ACCESS_KEY=(\S+)",
                          proc.stdout.readline().decode())
        assert found is not None
        assert "create-function" in proc.stdout.readline().decode()
        lam = _client(port, found.group(1), found.group(2))
        assert lam.list_functions()["Functions"] == []
        made = lam.create_function(FunctionName="up", Runtime="python3.11", Handler="app.handler",
                                   Role="arn:aws:iam::000000000000:role/any",
                                   Code={"ZipFile": buf.getvalue()})
        assert made["State"] == "Active"
        r = lam.invoke(FunctionName="up", Payload=b"{}")
        assert json.loads(r["Payload"].read()) == {"answer": 42}
        assert [f["FunctionName"] for f in lam.list_functions()["Functions"]] == ["up"]
        folders = glob.glob(os.path.join(tempfile.gettempdir(),
                                         f"servebench-{proc.pid}.*-lambda-code-*"))
        assert len(folders) == 1
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out
    assert _left_by(proc.pid) == []
    assert not os.path.exists(folders[0])  # the platform's code went with it
    remote = subprocess.run([*CLI, "--host", "0.0.0.0"], capture_output=True, text=True,
                            timeout=60, env=_environment())
    assert remote.returncode == 2 and "--allow-remote" in remote.stderr
