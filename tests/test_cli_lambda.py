"""`servebench lambda TARGET --port P`: the platform in the foreground, for people and scripts."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pytest_servebench.backends.local.processes import free_port
from pytest_servebench.functions.report import find_report

from .test_option_backend import _settle

pytest.importorskip("awslambdaric", reason="the local Lambda platform needs [functions]")
boto3 = pytest.importorskip("boto3")


def test_serves_one_function_to_boto3_and_stops_clean_on_ctrl_c() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_servebench.cli", "lambda", "text_rf", "--port", str(port),
         "--memory-mb", "1769", "--reserved-concurrency", "2", "--name", "bully"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert "function 'bully' (text_rf, 1769 MB;" in first and f":{port}" in first, first
        from botocore.config import Config

        lam = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}",
                           region_name="us-east-1", aws_access_key_id="x",
                           aws_secret_access_key="x", config=Config(retries={"max_attempts": 0}))
        r = lam.invoke(FunctionName="bully", Payload=json.dumps({"text": "you are awful"}),
                       LogType="Tail")
        body = json.loads(r["Payload"].read())
        assert body["label"] in ("bullying", "not_bullying")
        report = find_report(base64.b64decode(r["LogResult"]).decode())
        assert report is not None and report.cold_start and report.memory_size_mb == 1769
        assert lam.get_function_configuration(FunctionName="bully")["MemorySize"] == 1769
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, out
    assert "stopping" in out
    assert _settle() == []


def test_bad_arguments_fail_before_anything_starts() -> None:
    started = time.monotonic()
    bad = subprocess.run([sys.executable, "-m", "pytest_servebench.cli", "lambda", "text_rf",
                          "--memory-mb", "50"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "128..10240" in bad.stderr
    unknown = subprocess.run([sys.executable, "-m", "pytest_servebench.cli", "lambda", "nope"],
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "nope" in unknown.stderr
    assert time.monotonic() - started < 60
