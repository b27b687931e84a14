"""What one run left behind, found by its own tags only (other sessions may be running on the
machine: counts across the machine would judge their live resources)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_servebench.backends.local.processes import (
    process_token,
    servebench_processes,
    start_ticks,
    token_pid,
)
from pytest_servebench.backends.local.shaping import CGROUP_ROOT
from pytest_servebench.backends.local.sweep import folder_owner

MACHINE = process_token().rsplit(".", 1)[1]


def dead_token() -> str:
    """The token of a process that has exited (what a killed run leaves in names)."""
    proc = subprocess.Popen(["sleep", "30"])
    ticks = start_ticks(proc.pid)
    proc.kill()
    proc.wait()
    return f"{proc.pid}.{ticks}.{MACHINE}"


def folders(tmp_dir: Path, pid: int | None = None) -> list[str]:
    """servebench temp folders in ``tmp_dir`` made by process ``pid`` (any, when None)."""
    found = []
    for entry in tmp_dir.iterdir():
        owner = folder_owner(entry.name)
        if owner is not None and (pid is None or token_pid(owner) == pid):
            found.append(entry.name)
    return sorted(found)


def cgroups(pid: int, *, parents: bool = False) -> list[Path]:
    """cgroups named after process ``pid`` (v1: one per controller). The v2 parent group a
    Shaper makes lives as long as its process; it counts only with ``parents``."""
    found: list[Path] = []
    for base in (CGROUP_ROOT, CGROUP_ROOT / "cpu", CGROUP_ROOT / "cpu,cpuacct",
                 CGROUP_ROOT / "memory"):
        if not base.is_dir():
            continue
        for d in base.glob(f"servebench-{pid}.*"):
            if not d.is_dir():
                continue
            if "-" in d.name.removeprefix("servebench-") or parents:
                found.append(d)
            found += [c for c in d.glob("servebench-*") if c.is_dir()]
    return sorted(found)


def processes(*, owner: str | None = None, owner_pid: int | None = None) -> list[int]:
    """Live processes tagged with backend ``owner``, or started by process ``owner_pid``."""
    found = []
    for pid, env in servebench_processes().items():
        by_owner = owner is not None and env.get("SERVEBENCH_OWNER") == owner
        by_pid = owner_pid is not None and token_pid(
            env.get("SERVEBENCH_OWNER_PROCESS", "")) == owner_pid
        if by_owner or by_pid:
            found.append(pid)
    return sorted(found)


@dataclass(frozen=True)
class Left:
    processes: list[int]
    folders: list[str]
    cgroups: list[Path]

    def __bool__(self) -> bool:
        return bool(self.processes or self.folders or self.cgroups)


def left_by(pid: int, tmp_dir: Path, *, owner: str | None = None) -> Left:
    """Everything of process ``pid``'s run still on the machine."""
    procs = sorted({*processes(owner_pid=pid), *(processes(owner=owner) if owner else [])})
    return Left(procs, folders(tmp_dir, pid), cgroups(pid, parents=True))


def settle(look: Callable[[], Left], *, timeout_s: float = 30.0) -> Left:
    """Poll ``look`` until it finds nothing or ``timeout_s`` passes; the last finding."""
    deadline = time.monotonic() + timeout_s
    found = look()
    while found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = look()
    return found
