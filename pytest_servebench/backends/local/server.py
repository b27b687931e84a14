"""Server targets as local processes: the target's HTTP app under uvicorn (``servebench serve``)
on a free loopback port, shaped like an EC2 instance, a Fargate task or a SageMaker endpoint
where cgroups allow, ready when ``/health`` says so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..base import ServerTarget
from .processes import (
    StartError,
    free_port,
    kill_group,
    make_workdir,
    release_port,
    spawn,
    wait_until,
)
from .shaping import Cgroup, Shape, Shaper


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError:
        return False  # 503 while the model loads


def health_doc(base_url: str, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """What a server's ``/health`` says (its model, its provider), or {} when it says nothing
    readable: for every backend's servers (the aws backend's too)."""
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=timeout_s) as resp:
            doc = json.loads(resp.read())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def served_by(base_url: str, *, timeout_s: float = 5.0) -> dict[str, str]:
    """What runs a started server's model, for its target's profile: ``/health``'s ``device``
    and ``provider`` (e.g. ``CUDAExecutionProvider``); empty when it does not say."""
    doc = health_doc(base_url, timeout_s=timeout_s)
    return {k: str(doc[k]) for k in ("device", "provider") if doc.get(k)}


class ServerProcess:
    """One ``servebench serve`` process group; ``stop()`` leaves nothing behind."""

    def __init__(self, target: str, *, owner: str, shape: Shape | None, shaper: Shaper,
                 workers: int = 1, threads: int | None = None, slots: int | None = None,
                 environment: Mapping[str, str] | None = None, start_timeout_s: float = 120.0,
                 label: str = "server") -> None:
        self.target = target
        self.port = free_port()
        self.cgroup: Cgroup | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        threads = threads or (shape.threads() if shape else None)
        self.threads = threads
        argv = [sys.executable, "-m", "pytest_servebench.cli", "serve", target,
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
                "--log-level", "warning"]
        if threads:
            argv += ["--threads", str(threads)]
        if slots:
            argv += ["--slots", str(slots)]
        env = {**os.environ, **(environment or {}), "PYTHONUNBUFFERED": "1"}
        self.workdir: Path | None = None
        try:  # a failed start (any step) leaves nothing: stop() undoes what was done
            self.workdir = make_workdir(label)
            self.log = self.workdir / "server.log"
            self.proc = spawn(argv, env=env, owner=owner, log=self.log, cwd=self.workdir)
            if shape is not None and shaper.can_shape:
                self.cgroup = shaper.make(shape, label)
                if self.cgroup is not None:
                    self.cgroup.add(self.proc.pid)
            health = f"http://127.0.0.1:{self.port}/health"
            self.ready_s = wait_until(lambda: _health(health), timeout_s=start_timeout_s,
                                      what=f"server {target} on port {self.port}",
                                      proc=self.proc, log=self.log, interval_s=0.05)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/predict"

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as r:
            doc: dict[str, Any] = json.loads(r.read())
            return doc

    def stop(self) -> None:
        """Kill the process group, release the port, remove the cgroup and the workdir (safe
        to call again, and on a half-made server)."""
        if self.proc is not None:
            kill_group(self.proc)
        release_port(self.port)
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


class ProcessServers:
    """Starts servers as ``servebench serve`` processes, shaped with ``shaper``'s cgroups
    (the local backend's ``ServerLauncher``)."""

    def __init__(self, *, owner: str, shaper: Shaper) -> None:
        self.owner, self.shaper = owner, shaper

    def start(self, target: str, *, shape: Shape, workers: int, threads: int | None,
              slots: int | None, environment: Mapping[str, str], label: str) -> ServerProcess:
        return ServerProcess(target, owner=self.owner, shape=shape, shaper=self.shaper,
                             workers=workers, threads=threads, slots=slots,
                             environment=environment, label=label)


__all__ = ["ProcessServers", "ServerProcess", "ServerTarget", "StartError", "health_doc",
           "served_by"]
