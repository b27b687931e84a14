"""Object storage on loopback: moto's S3 server as a child process (a real S3 API, no cloud).

Functions can fetch their model from it at init, as study 004's functions pulled theirs from
S3 (what its "Parallel 1" init overlaps with library imports), and study 001's functions read
their inputs and write their results there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .processes import free_port, kill_group, make_workdir, release_port, spawn, wait_until

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "servebench", "AWS_SECRET_ACCESS_KEY": "servebench",
               "AWS_DEFAULT_REGION": "us-east-1"}


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # it answers: up


class ObjectStore:
    """``python -m moto.server`` on 127.0.0.1; ``stop()`` leaves nothing behind."""

    def __init__(self, *, owner: str, start_timeout_s: float = 60.0) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None
        try:  # a failed start (any step) leaves nothing: stop() undoes what was done
            self.workdir = make_workdir("s3")
            log = self.workdir / "moto.log"
            self.proc = spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(self.port)], env=dict(os.environ), owner=owner,
                              log=log)
            wait_until(lambda: _up(self.endpoint_url + "/"), timeout_s=start_timeout_s,
                       what="moto S3 server", proc=self.proc, log=log, interval_s=0.05)
        except BaseException:
            self.stop()
            raise

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """What a function needs to reach this store with boto3's default settings."""
        return {"AWS_ENDPOINT_URL_S3": self.endpoint_url, **CREDENTIALS}

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def upload(self, path: Path, bucket: str, key: str) -> str:
        s3 = self.client()
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
        s3.upload_file(str(path), bucket, key)
        return f"s3://{bucket}/{key}"

    def put(self, data: bytes, bucket: str, key: str) -> str:
        s3 = self.client()
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"

    def get(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def stop(self) -> None:
        """Kill the server, release its port, remove its folder (safe to call again)."""
        if self.proc is not None:
            kill_group(self.proc)
        release_port(self.port)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
