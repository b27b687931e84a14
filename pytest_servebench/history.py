"""The shared JSON history: every run's results, kept safe for comparisons over time.

Safety rules: writes go to a temporary file that replaces the history atomically, under a lock
(``filelock``), so parallel writers (xdist controllers, CI jobs) never lose entries and a writer
killed mid-write leaves the old file intact. A corrupt file or one from a newer version is
reported and left as it is; older versions are migrated on read.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .result import Result
    from .slo import Verdict

SCHEMA_VERSION = 1
DEFAULT_PATH = ".servebench/history.json"
DEFAULT_KEEP = 100
LOCK_TIMEOUT_S = 60.0


class HistoryError(RuntimeError):
    """The history cannot be used as it is; the file was not changed."""


def _migrate_0_to_1(data: Any) -> dict[str, Any]:
    # Version 0 (pre-release exports) was a bare list of runs.
    return {"schema_version": 1, "runs": list(data)}


MIGRATIONS: dict[int, Callable[[Any], dict[str, Any]]] = {0: _migrate_0_to_1}


def _version_of(data: Any) -> int:
    if isinstance(data, list):
        return 0
    if isinstance(data, dict) and isinstance(data.get("schema_version"), int):
        return int(data["schema_version"])
    raise HistoryError("has no schema_version")


def migrate(data: Any, path: str = "history") -> dict[str, Any]:
    version = _version_of(data)
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"{path} was written by a newer pytest-servebench (schema_version {version}; this "
            f"version reads up to {SCHEMA_VERSION}); upgrade, or point --servebench-history "
            "elsewhere. The file was left as it is.")
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version = _version_of(data)
    if not isinstance(data.get("runs"), list):
        raise HistoryError(f"{path} has no list of runs")
    return dict(data)


def entry_key(nodeid: str, target_profile: Mapping[str, Any], backend: str) -> str:
    """What a baseline must match: the test (with its parameters), the target's profile and the
    backend. URLs and ports vary run to run and are left out."""
    profile = {k: v for k, v in target_profile.items() if k not in ("url", "name")}
    return json.dumps([nodeid, profile, backend], sort_keys=True, default=str)


def make_entry(nodeid: str, result: Result, verdicts: Iterable[Verdict], backend: str) -> dict[
        str, Any]:
    from .stats import Estimate

    def est(e: Estimate) -> dict[str, float | int]:
        return {"value": e.value, "low": e.low, "high": e.high, "n": e.n}

    lat = result.latency
    metrics = {name: est(getattr(lat, name))
               for name in ("p50", "p90", "p95", "p99", "p999", "mean", "max")}
    entry: dict[str, Any] = {
        "nodeid": nodeid,
        "key": entry_key(nodeid, result.target_profile, backend),
        "backend": backend,
        "target": result.target,
        "target_profile": dict(result.target_profile),
        "workload": dict(result.workload),
        "count": result.count,
        "ok_count": result.ok_count,
        "errors": dict(result.errors),
        "duration_s": result.duration_s,
        "throughput": result.throughput,
        "success_ratio": result.success_ratio,
        "latency_s": metrics,
        "histogram": result.histogram.to_dict(),
        "slo": [{"slo": v.slo.text, "outcome": v.outcome} for v in verdicts],
    }
    if result.cold_starts is not None:
        entry["cold_starts"] = {"count": result.cold_starts.count,
                                "latency_p50_s": result.cold_starts.latency.p50.value}
    if result.cost is not None:
        entry["cost"] = result.cost.to_dict()
    return entry


def _git() -> dict[str, Any]:
    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": run("rev-parse", "HEAD"), "branch": run("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": None if status is None else bool(status)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_fingerprint() -> dict[str, Any]:
    """What makes timings comparable; reading versions never imports the packages."""
    from importlib import metadata

    versions = {}
    for pkg in ("pytest-servebench", "pytest", "numpy", "onnxruntime", "torch", "boto3"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "memory_gib": _memory_gib(),
            "os": f"{platform.system()} {platform.release()}", "machine": platform.machine(),
            "python": platform.python_version(), "packages": versions}


def fingerprint_id(fp: Mapping[str, Any]) -> str:
    """The parts of a fingerprint that change timings (not package patch levels)."""
    return json.dumps([fp.get("cpu"), fp.get("cores"), fp.get("memory_gib"), fp.get("machine")])


def new_run(entries: list[dict[str, Any]], *, backend: str, name: str | None = None,
            metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "run_id": uuid.uuid4().hex[:12],
        "name": name,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": _git(),
        "machine": machine_fingerprint(),
        "backend": backend,
        "python": sys.version.split()[0],
        "metadata": dict(metadata or {}),
        "entries": entries,
    }


@dataclass(frozen=True)
class History:
    """A history file. ``load()`` reads it; ``append()`` adds a run under the lock."""

    path: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> History:
        return cls(Path(path))

    def _lock(self) -> Any:
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT_S)

    def load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"schema_version": SCHEMA_VERSION, "runs": []}
        text = self.path.read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HistoryError(
                f"{self.path} is not valid JSON ({exc}); it was left as it is. Move it aside "
                "(or repair it) to start a new history.") from None
        try:
            return migrate(data, str(self.path))
        except HistoryError as exc:
            if str(exc).startswith(str(self.path)):
                raise
            raise HistoryError(f"{self.path} {exc}; it was left as it is") from None

    def runs(self) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.load()["runs"]
        return runs

    def append(self, run: Mapping[str, Any], *, keep: int = DEFAULT_KEEP) -> None:
        """Add a run, then keep the last ``keep`` runs of every test key."""
        with self._lock():
            data = self.load()
            data["runs"].append(dict(run))
            data["runs"] = retain(data["runs"], keep)
            self._write(data)

    def _write(self, data: Mapping[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp",
                                   dir=self.path.parent)
        try:
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared history is not
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, separators=(",", ":"), allow_nan=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def retain(runs: list[dict[str, Any]], keep: int) -> list[dict[str, Any]]:
    """Drop entries beyond the newest ``keep`` per key, and runs left with no entries."""
    if keep <= 0:
        return runs
    seen: dict[str, int] = {}
    kept_runs = []
    for run in reversed(runs):
        entries = []
        for entry in run.get("entries", []):
            n = seen.get(entry["key"], 0)
            if n < keep:
                entries.append(entry)
            seen[entry["key"]] = n + 1
        if entries:
            kept_runs.append({**run, "entries": entries})
    kept_runs.reverse()
    return kept_runs
