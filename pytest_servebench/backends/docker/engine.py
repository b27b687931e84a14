"""The Docker engine: a client with a clear error when there is none, the labels every container
of a run carries, a sweeper for leftovers of dead runs, and a reaper process that removes this
run's containers when the run dies however it dies (testcontainers' Ryuk, without an image to
pull: Ryuk's image cannot be fetched on a machine without a registry).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LABEL_PREFIX = "servebench."
RUN_LABEL = LABEL_PREFIX + "run-id"
OWNER_PID_LABEL = LABEL_PREFIX + "owner-pid"
OWNER_START_LABEL = LABEL_PREFIX + "owner-start"
HOST_LABEL = LABEL_PREFIX + "host"


class EngineError(RuntimeError):
    """No usable Docker engine; the message says how to get one."""


def docker_client() -> Any:
    """A Docker SDK client that has answered a ping."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - a dependency of testcontainers
        raise EngineError("the container backend needs `pip install testcontainers`") from exc
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        raise EngineError(
            f"no Docker engine answers ({exc}). Install and start one, e.g. "
            "`apt-get install -y docker.io && (dockerd > /var/log/dockerd.log 2>&1 &)`, "
            "or set DOCKER_HOST.") from exc
    return client


def _start_ticks(pid: int) -> str:
    """A process's start time in clock ticks since boot (tells a pid from its reuse)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def host_id() -> str:
    """This machine since its last boot: owners are only judged alive or dead on their host."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "unknown"
    return f"{socket.gethostname()}/{boot}"


def run_labels(run_id: str) -> dict[str, str]:
    pid = os.getpid()
    return {RUN_LABEL: run_id, OWNER_PID_LABEL: str(pid), OWNER_START_LABEL: _start_ticks(pid),
            HOST_LABEL: host_id()}


def _owner_alive(labels: dict[str, str]) -> bool:
    if labels.get(HOST_LABEL) != host_id():
        return True  # another machine's run (a shared engine): not ours to judge
    try:
        pid = int(labels.get(OWNER_PID_LABEL, ""))
    except ValueError:
        return False
    return _start_ticks(pid) == labels.get(OWNER_START_LABEL) != ""


def run_containers(client: Any, run_id: str | None = None) -> list[Any]:
    """Containers (running or not) of run ``run_id``, or of every servebench run."""
    label = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    # The list is inspected container by container; one removed in between (by the reaper,
    # by a sweep) is skipped rather than raising a 404 out of the listing.
    return list(client.containers.list(all=True, filters={"label": label},
                                       ignore_removed=True))


def remove_containers(client: Any, containers: list[Any]) -> int:
    import docker.errors

    removed = 0
    for c in containers:
        with contextlib.suppress(docker.errors.NotFound):
            c.remove(force=True)
            removed += 1
    return removed


def sweep_dead_runs(client: Any) -> int:
    """Remove containers whose run died on this host without removing them; return how many."""
    dead = [c for c in run_containers(client) if not _owner_alive(dict(c.labels))]
    return remove_containers(client, dead)


class Reaper:
    """A watchdog process that removes run ``run_id``'s containers once our end of its stdin
    closes: at ``close()``, or when the kernel closes it because this process died (``kill -9``
    included). It runs in its own session, so Ctrl-C in the terminal does not reach it."""

    def __init__(self, run_id: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERVEBENCH_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_servebench.backends.docker.engine", run_id],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env, start_new_session=True)

    def close(self, timeout_s: float = 30.0) -> None:
        """Say the run ended in order (one sweep, no waiting for late containers), then let the
        reaper finish."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.write(_ORDERLY)
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_ORDERLY = b"closed in order\n"


def _reap(run_id: str) -> int:
    """The reaper's body: wait for EOF on stdin, then remove the run's containers."""
    got = b""
    with contextlib.suppress(OSError):
        while chunk := sys.stdin.buffer.read(4096):
            got += chunk
    client = docker_client()
    passes = 1 if got.endswith(_ORDERLY) else 3
    for attempt in range(passes):  # a container being created as the run died shows up late
        remove_containers(client, run_containers(client, run_id))
        if attempt + 1 < passes:
            time.sleep(0.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(_reap(sys.argv[1]))
