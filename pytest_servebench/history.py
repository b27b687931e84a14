"""The shared JSON history: every run's results, kept safe for comparisons over time.

Safety rules: writes go to a temporary file that replaces the history atomically, under a lock
(``filelock``), so parallel writers (xdist controllers, CI jobs) never lose entries and a writer
killed mid-write leaves the old file intact. A corrupt file or one from a newer version is
reported and left as it is; older versions are migrated on read.
"""

from __future__ import annotations

import json
import math
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

SCHEMA_VERSION = 2
DEFAULT_PATH = ".servebench/history.json"
DEFAULT_KEEP = 100
LOCK_TIMEOUT_S = 60.0


class HistoryError(RuntimeError):
    """The history cannot be used as it is; the file was not changed."""


def _migrate_0_to_1(data: Any) -> dict[str, Any]:
    # Version 0 (pre-release exports) was a bare list of runs.
    return {"schema_version": 1, "runs": list(data)}


def _migrate_1_to_2(data: Any) -> dict[str, Any]:
    # Version 1 keyed baselines on the whole target profile, measured and ephemeral fields
    # included (a function's endpoint port, a server's ready time), so no key ever matched
    # twice on the local backend. Keys are now built from identity alone: recompute them.
    runs = []
    for run in data.get("runs", []):
        entries = []
        for entry in run.get("entries", []):
            ident = identity(str(entry.get("nodeid")), str(entry.get("target", "")),
                             entry.get("target_profile") or {}, str(entry.get("backend")),
                             entry.get("workload") or {})
            entries.append({**entry, "identity": ident, "key": entry_key(ident)})
        runs.append({**run, "entries": entries})
    return {**data, "schema_version": 2, "runs": runs}


MIGRATIONS: dict[int, Callable[[Any], dict[str, Any]]] = {0: _migrate_0_to_1, 1: _migrate_1_to_2}


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


# What a target IS, as opposed to what was measured of it (ready time, peak memory) or where it
# happened to run (URL, port, pid, container or sandbox id). A baseline must match all of these
# and nothing else: a target that profiles something new keeps it out of the key unless it is
# listed here, or unless the target lists it under ``profile["identity"]``.
IDENTITY_FIELDS = ("kind", "platform", "target", "model", "memory_mb", "instance_type", "vcpu",
                   "memory_gb", "arch", "model_from", "parallel_init", "reserved_concurrency",
                   "provisioned_concurrency", "workers", "threads", "slots", "method",
                   "launcher", "handler", "runtime", "provider")


def identity(nodeid: str, target_name: str, target_profile: Mapping[str, Any], backend: str,
             workload: Mapping[str, Any]) -> dict[str, Any]:
    """What a baseline must match: the test with its parameters, the target's name (stable by
    contract: backends keep run ids and ports out of names), its kind, model and platform shape,
    the backend, and the workload's spec."""
    target = {k: target_profile[k] for k in IDENTITY_FIELDS if k in target_profile}
    extra = target_profile.get("identity")
    if isinstance(extra, Mapping):
        target["identity"] = dict(extra)
    return {"test": nodeid, "target_name": target_name, "target": target, "backend": backend,
            "workload": {k: v for k, v in workload.items() if k != "str"}}


def entry_key(ident: Mapping[str, Any]) -> str:
    return json.dumps(ident, sort_keys=True, default=str)


def make_entry(nodeid: str, result: Result, verdicts: Iterable[Verdict], backend: str, *,
               repeat: int = 0) -> dict[str, Any]:
    """One result as a history entry. ``repeat``: how many results of the same identity the
    test produced before this one (a test that runs one workload several times, e.g. a cold
    start per repetition), so each is compared with its own counterpart."""
    from .stats import Estimate

    def est(e: Estimate) -> dict[str, float | int]:
        return {"value": e.value, "low": e.low, "high": e.high, "n": e.n}

    lat = result.latency
    metrics = {name: est(getattr(lat, name))
               for name in ("p50", "p90", "p95", "p99", "p999", "mean", "max")}
    ident = identity(nodeid, result.target, result.target_profile, backend, result.workload)
    if repeat:
        ident["repeat"] = repeat
    lag = result.schedule_lag
    entry: dict[str, Any] = {
        "nodeid": nodeid,
        "key": entry_key(ident),
        "identity": ident,
        "backend": backend,
        "target": result.target,
        "target_profile": dict(result.target_profile),
        "workload": dict(result.workload),
        "count": result.count,
        "ok_count": result.ok_count,
        "errors": dict(result.errors),
        "censored": result.censored,
        "timeout_s": result.timeout_s if math.isfinite(result.timeout_s) else None,
        "duration_s": result.duration_s,
        "throughput": result.throughput,
        "throughput_window": {"width_s": result.window_s,
                              "counts": list(result.throughput_bins)},
        "offered_rate": result.offered_rate,
        "success_ratio": result.success_ratio,
        "latency_s": metrics,
        "histogram": result.histogram.to_dict(),
        "schedule_lag": None if lag is None else {
            "p50_s": lag.p50_s, "p99_s": lag.p99_s, "max_s": lag.max_s, "late": lag.late,
            "count": lag.count, "late_threshold_s": lag.late_threshold_s,
            "late_share": lag.late_share},
        "valid": result.valid,
        "invalid_reason": result.invalid_reason,
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


def _shape_problem(data: Any, *, need_keys: bool) -> str | None:
    """What is wrong with the shape of a history's data, or None: the runs (a list of objects,
    at the top or under ``runs``) and their entries (lists of objects; with ``need_keys``, each
    with its string key). ``migrate`` reports a missing or unknown schema_version."""
    runs = data.get("runs") if isinstance(data, dict) else data
    if not isinstance(runs, list):
        return f"its runs are {type(runs).__name__}, not a list"
    for i, run in enumerate(runs):
        if not isinstance(run, dict):
            return f"run {i} is {type(run).__name__}, not an object"
        entries = run.get("entries")
        if not isinstance(entries, list):
            return f"run {i} has no list of entries"
        for j, entry in enumerate(entries):
            if not isinstance(entry, dict):
                return f"entry {j} of run {i} is {type(entry).__name__}, not an object"
            if need_keys and not isinstance(entry.get("key"), str):
                return f"entry {j} of run {i} has no key"
    return None


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
        """The history's data, migrated to the current schema. Anything that makes it unusable
        (unreadable, not JSON, binary, the wrong shape, a directory, a newer version) raises
        ``HistoryError``; the file is never touched."""
        kept = "it was left as it is"
        try:
            if not self.path.exists():
                return {"schema_version": SCHEMA_VERSION, "runs": []}
            if self.path.is_dir():
                raise HistoryError(
                    f"{self.path} is a directory, not a history file; {kept}. Point "
                    "--servebench-history at a file.")
            raw = self.path.read_bytes()
        except OSError as exc:
            raise HistoryError(f"{self.path} cannot be read ({exc.strerror or exc}); "
                               f"{kept}") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise HistoryError(
                f"{self.path} is not valid JSON: it is not UTF-8 text (binary data? {exc}); "
                f"{kept}. Move it aside (or repair it) to start a new history.") from None
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, nesting too deep
            raise HistoryError(
                f"{self.path} is not valid JSON ({exc}); {kept}. Move it aside "
                "(or repair it) to start a new history.") from None
        migrated: dict[str, Any] | None = None
        problem: str | None
        try:
            migrated = migrate(data, str(self.path))
        except HistoryError as exc:
            text = str(exc) if str(exc).startswith(str(self.path)) else f"{self.path} {exc}"
            raise HistoryError(text if "left as it is" in text else f"{text}; {kept}") from None
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # An old version whose runs or entries have the wrong shape for its migration.
            problem = (_shape_problem(data, need_keys=False)
                       or f"it could not be migrated ({type(exc).__name__}: {exc})")
        else:
            problem = _shape_problem(migrated, need_keys=True)
        if problem is not None or migrated is None:
            raise HistoryError(f"{self.path} is not a pytest-servebench history: {problem}; "
                               f"{kept}. Move it aside (or repair it) to start a new history.")
        return migrated

    def runs(self) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.load()["runs"]
        return runs

    def append(self, run: Mapping[str, Any], *, keep: int = DEFAULT_KEEP) -> None:
        """Add a run, then keep the last ``keep`` runs of every test key. Whatever stops the
        write (the folder cannot be made, another run holds the lock too long, the disk is
        full) raises ``HistoryError``; the file as it was is kept."""
        from filelock import Timeout

        try:
            with self._lock():
                data = self.load()
                data["runs"].append(dict(run))
                data["runs"] = retain(data["runs"], keep)
                self._write(data)
        except Timeout:
            raise HistoryError(
                f"{self.path}: another run has held its lock ({self.path}.lock) for more than "
                f"{LOCK_TIMEOUT_S:g} s; this run was not saved. If no other run is writing, "
                "remove the lock file.") from None
        except OSError as exc:
            where = exc.filename or self.path
            raise HistoryError(
                f"{self.path} cannot be written ({where}: {exc.strerror or exc}); this run "
                "was not saved and the history was left as it is") from None

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
