"""Resource shapes (vCPU, memory) applied to local processes with Linux cgroups.

Lambda gives a function CPU in proportion to its memory, one vCPU at 1,769 MB; Fargate tasks and
EC2 instances have fixed vCPU and memory. Here a shape becomes a cgroup: a CFS quota for the CPU
share and a memory limit (the kernel kills the sandbox past it, as Lambda does). Where cgroups
cannot be written (no root, a read-only mount) nothing is shaped and ``describe()`` says so: a
result never claims a shape it did not have. The shapes themselves are the platforms'
(``platforms.Shape``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from ...platforms import LAMBDA_MB_PER_VCPU, LAMBDA_MEMORY_MB, Shape
from ...waiting import ReadinessTimeout, wait_for
from .processes import owner_gone, process_token

# A short CFS period spreads a fractional share over each request (a 0.5 vCPU function runs a
# 12 ms inference in about 24 ms) instead of letting a request burst through a 100 ms budget at
# full speed; 20 ms keeps the smallest share (128 MB, 0.07 vCPU) above the kernel's 1 ms quota.
CFS_PERIOD_US = 20_000
CGROUP_ROOT = Path(os.environ.get("SERVEBENCH_CGROUP_ROOT", "/sys/fs/cgroup"))


class Cgroup:
    """One shaped group; processes are added by pid, children follow."""

    def __init__(self, dirs: dict[str, Path], version: int) -> None:
        self.dirs, self.version = dirs, version

    def add(self, pid: int) -> None:
        for d in self.dirs.values():
            (d / "cgroup.procs").write_text(str(pid))

    def peak_memory_mb(self) -> float | None:
        d = self.dirs.get("memory")
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        if d is None:
            return None
        try:
            return int((d / name).read_text()) / 2**20
        except (OSError, ValueError):
            return None

    def oom_killed(self) -> bool:
        d = self.dirs.get("memory")
        if d is None:
            return False
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            events = (d / name).read_text()
        except OSError:
            return False
        return any(line.startswith("oom_kill ") and line.split()[1] != "0"
                   for line in events.splitlines())

    def remove(self, *, timeout_s: float = 5.0) -> None:
        """Remove the group once its processes are gone (bounded wait: a group still busy
        then is left to the next run's sweep)."""
        deadline = time.monotonic() + timeout_s
        for d in self.dirs.values():
            _remove_when_empty(d, timeout_s=deadline - time.monotonic())


class Shaper:
    """Finds out once whether this machine can shape, then makes a cgroup per shape."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.root = root
        self.version, self.reason = self._probe()
        self._n = 0

    @property
    def can_shape(self) -> bool:
        return self.version != 0

    def _v1_dirs(self) -> dict[str, Path] | None:
        cpu = next((self.root / n for n in ("cpu", "cpu,cpuacct")
                    if (self.root / n / "cpu.cfs_quota_us").exists()), None)
        mem = self.root / "memory"
        if cpu is None or not (mem / "memory.limit_in_bytes").exists():
            return None
        return {"cpu": cpu, "memory": mem}

    def _probe(self) -> tuple[int, str]:
        if os.environ.get("SERVEBENCH_NO_SHAPING"):
            return 0, "shaping turned off (SERVEBENCH_NO_SHAPING)"
        sweep(self.root)
        v1 = self._v1_dirs()
        if v1 is not None:
            probe = {k: d / f"servebench-{process_token()}-probe" for k, d in v1.items()}
            try:
                for d in probe.values():
                    d.mkdir(exist_ok=True)
                (probe["cpu"] / "cpu.cfs_quota_us").write_text("50000")
                return 1, "cgroup v1 (cpu cfs quota, memory limit)"
            except OSError as exc:
                return 0, f"cgroup v1 is not writable here ({exc.strerror})"
            finally:
                for d in probe.values():
                    with contextlib.suppress(OSError):
                        d.rmdir()
        controllers = self.root / "cgroup.controllers"
        if controllers.exists():
            have = controllers.read_text().split()
            if not {"cpu", "memory"} <= set(have):
                return 0, f"cgroup v2 without the cpu and memory controllers ({' '.join(have)})"
            try:
                parent = self.root / f"servebench-{process_token()}"
                parent.mkdir(exist_ok=True)
                (parent / "cgroup.subtree_control").write_text("+cpu +memory")
                return 2, "cgroup v2 (cpu.max, memory.max)"
            except OSError as exc:
                return 0, f"cgroup v2 is not writable here ({exc.strerror})"
        return 0, "no cgroup file system found"

    def make(self, shape: Shape, label: str) -> Cgroup | None:
        """A cgroup holding ``shape``, or None where this machine cannot shape. Named after
        this process (``processes.process_token``) so that ``sweep`` knows whose it is; a
        failure half-way removes what was made."""
        if not self.can_shape:
            return None
        self._n += 1
        name = f"servebench-{process_token()}-{self._n}-{label}"
        quota = max(1000, int(shape.vcpu * CFS_PERIOD_US))
        limit = shape.memory_mb * 2**20
        if self.version == 1:
            group = Cgroup({k: d / name for k, d in (self._v1_dirs() or {}).items()}, 1)
        else:
            d = self.root / f"servebench-{process_token()}" / name
            group = Cgroup({"cpu": d, "memory": d}, 2)
        made: list[Path] = []
        try:
            for d in dict.fromkeys(group.dirs.values()):  # v2: one directory for both
                d.mkdir()
                made.append(d)
            if self.version == 1:
                (group.dirs["cpu"] / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
                (group.dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))
                (group.dirs["memory"] / "memory.limit_in_bytes").write_text(str(limit))
                with contextlib.suppress(OSError):  # no swap accounting on some kernels
                    (group.dirs["memory"] / "memory.memsw.limit_in_bytes").write_text(str(limit))
            else:
                (group.dirs["cpu"] / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
                (group.dirs["memory"] / "memory.max").write_text(str(limit))
                with contextlib.suppress(OSError):
                    (group.dirs["memory"] / "memory.swap.max").write_text("0")
        except BaseException:
            for d in made:  # empty: nothing was added to them yet
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise
        return group

    def describe(self, shape: Shape) -> dict[str, Any]:
        cores = len(os.sched_getaffinity(0))
        out: dict[str, Any] = {"vcpu": round(shape.vcpu, 3), "memory_mb": shape.memory_mb,
                               "threads": shape.threads(cores), "shaping": self.reason,
                               "shaped": self.can_shape}
        if shape.vcpu > cores:
            out["cpu_capped_at_cores"] = cores
        return out


def _owner_gone(name: str) -> bool:
    """Whether the run that named cgroup ``servebench-<owner>[-...]`` has surely exited. The
    owner is a ``process_token``, or a bare pid in the names of earlier versions (a reused
    pid then reads as alive: such a group waits, never a live run's)."""
    owner = name.removeprefix("servebench-").split("-", 1)[0]
    if owner.isdigit():
        return not _alive(int(owner))
    return owner_gone(owner)


def _kill_members(group: Path) -> int:
    """SIGKILL the processes left in a dead run's cgroup (and its children): they are its own,
    and a cgroup with members cannot be removed."""
    killed = 0
    for procs in (group / "cgroup.procs", *group.glob("*/cgroup.procs")):
        with contextlib.suppress(OSError, ValueError):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
                    killed += 1
    return killed


def sweep(root: Path = CGROUP_ROOT, *, timeout_s: float = 2.0) -> int:
    """Remove the servebench cgroups of runs that are gone (processes still in them are
    killed first; ``timeout_s`` bounds the wait for them to exit); returns how many groups
    were removed. A live run's groups are never touched."""
    dead: list[Path] = []
    for base in (root, root / "cpu", root / "cpu,cpuacct", root / "memory"):
        with contextlib.suppress(OSError):
            dead += [d for d in base.glob("servebench-*") if d.is_dir() and _owner_gone(d.name)]
    if not dead:
        return 0
    killed = sum(_kill_members(d) for d in dead)
    deadline = time.monotonic() + (timeout_s if killed else 0.0)
    removed = 0
    for d in dead:
        for group in [*sorted(d.glob("servebench-*"), reverse=True), d]:
            # still busy at the deadline: the next sweep takes it
            removed += _remove_when_empty(group, timeout_s=deadline - time.monotonic())
    return removed


def _remove_when_empty(group: Path, *, timeout_s: float) -> bool:
    """Remove a cgroup directory, retrying while its last processes exit; whether it went
    (False: still busy after ``timeout_s``, or already gone)."""
    removed = False

    def rmdir() -> bool:
        nonlocal removed
        try:
            group.rmdir()
        except FileNotFoundError:
            return True
        removed = True
        return True

    with contextlib.suppress(ReadinessTimeout):
        wait_for(rmdir, timeout_s=max(0.0, timeout_s), interval_s=0.02, retry_on=(OSError,),
                 what=f"cgroup {group.name}")
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["CFS_PERIOD_US", "CGROUP_ROOT", "LAMBDA_MB_PER_VCPU", "LAMBDA_MEMORY_MB", "Cgroup",
           "Shape", "Shaper", "sweep"]
