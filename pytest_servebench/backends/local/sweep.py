"""Leftovers of dead runs: what a run that was killed (``kill -9``, an OOM kill, a crashed xdist
worker) could not clean up itself, removed by the next backend that starts on the machine.

A run's children die with it (``PR_SET_PDEATHSIG``), but its temp folders and cgroups stay, and
a grandchild that outlives its parent would too. Each carries the ``process_token`` of the
process that made it (in its name, or ``SERVEBENCH_OWNER_PROCESS`` in its environment); the
sweep takes only those whose owner has surely exited, so runs that share the machine never
lose a live resource. Removing a dead run's folder is the one thing a pid reuse could get
wrong, and the token's start time rules that out.

>>> swept = sweep_dead_runs()  # doctest: +SKIP
>>> swept.processes, swept.folders, swept.cgroups  # doctest: +SKIP
(0, 16, 2)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ...waiting import ReadinessTimeout, wait_for
from . import shaping
from .processes import OWNER_PROCESS_ENV, owner_gone, servebench_processes, start_ticks

PREFIX = "servebench-"


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep removed."""

    processes: int = 0
    folders: int = 0
    cgroups: int = 0


def folder_owner(name: str) -> str | None:
    """The owner token in a temp folder name ``servebench-<token>-<kind>-...``, or None for
    names of other shapes (the machine lock, the model cache, folders of earlier versions)."""
    if not name.startswith(PREFIX):
        return None
    owner, sep, _ = name.removeprefix(PREFIX).partition("-")
    return owner if sep and owner.count(".") == 2 else None


def kill_orphans(*, timeout_s: float = 2.0) -> int:
    """SIGKILL tagged processes whose owner process is gone; wait up to ``timeout_s`` for them
    to exit (a cgroup is only removable once they have). Returns how many were killed."""
    doomed = {pid: start_ticks(pid) for pid, env in servebench_processes().items()
              if owner_gone(env.get(OWNER_PROCESS_ENV, ""))}
    killed: list[int] = []
    for pid, ticks in doomed.items():
        if not ticks or start_ticks(pid) != ticks:  # exited (and maybe reused) since the scan
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    with contextlib.suppress(ReadinessTimeout):  # one still dying is the next sweep's
        wait_for(lambda: not any(start_ticks(pid) == doomed[pid] and not _zombie(pid)
                                 for pid in killed),
                 timeout_s=timeout_s, interval_s=0.02, what="killed orphans")
    return len(killed)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def remove_dead_folders(tmp_dir: Path | None = None) -> int:
    """Remove ``servebench-<token>-*`` folders in the temp directory whose owner is gone
    (one listing of the directory)."""
    base = Path(tmp_dir or tempfile.gettempdir())
    removed = 0
    try:
        names = os.listdir(base)
    except OSError:
        return 0
    for name in names:
        owner = folder_owner(name)
        if owner is None or not owner_gone(owner):
            continue
        path = base / name
        if path.is_symlink() or not path.is_dir():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += not path.exists()
    return removed


def sweep_dead_runs(*, tmp_dir: Path | None = None, cgroup_root: Path | None = None) -> Swept:
    """Kill the processes, then remove the cgroups and temp folders, of runs that are gone.
    Processes first: their cgroups cannot go while they are in them."""
    processes = kill_orphans()
    cgroups = shaping.sweep(cgroup_root or shaping.CGROUP_ROOT)
    return Swept(processes=processes, folders=remove_dead_folders(tmp_dir), cgroups=cgroups)


__all__ = ["Swept", "folder_owner", "kill_orphans", "remove_dead_folders", "sweep_dead_runs"]
