"""The shared JSON history: every run's results, kept safe for comparisons over time.

Safety rules: writes go to a temporary file that replaces the history atomically, under a lock
(``filelock``), so parallel writers (xdist controllers, CI jobs) never lose entries and a writer
killed mid-write leaves the old file intact. A corrupt file or one from a newer version is
reported and left as it is; older versions are migrated on read.

What is in it: ``{"schema_version": 3, "runs": [Run, ...]}``, each ``Run`` holding one ``Entry``
per result; both are frozen dataclasses read and written by ``from_json``/``to_json`` (asv's
``Results`` is the model), so every reader has typed fields, not string keys. The file is
strict JSON: a number that is undefined or unbounded (the p50 of a run with no successful
request, the open end of an interval) is written as null and read back as NaN, or as -inf/+inf
for the low/high end of an interval. Schema 2 files held bare ``NaN``/``Infinity``; reading
migrates them.
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from .cost import CostEstimate
from .histogram import LatencyHistogram
from .metrics import LATENCY_STATS
from .result import Result
from .slo import Verdict
from .stats import Estimate

SCHEMA_VERSION = 3
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


def _migrate_2_to_3(data: Any) -> dict[str, Any]:
    # Version 2 wrote undefined and unbounded numbers as bare NaN and Infinity, which strict
    # JSON readers refuse: they become null (``Entry.from_json`` reads them back).
    strict: dict[str, Any] = _strict({**data, "schema_version": 3})
    return strict


MIGRATIONS: dict[int, Callable[[Any], dict[str, Any]]] = {0: _migrate_0_to_1, 1: _migrate_1_to_2,
                                                          2: _migrate_2_to_3}


def _strict(value: Any) -> Any:
    """``value`` with every NaN or infinity, at any depth, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


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


# --- the typed records ---------------------------------------------------------------------


def _number(value: Any, name: str, *, null: float = math.nan) -> float:
    """A stored number; null reads as ``null`` (NaN unless the field says otherwise)."""
    if type(value) is float:
        return value
    if value is None:
        return null
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is {value!r}, not a number")
    return float(value)


def _optional(value: Any, name: str) -> float | None:
    return None if value is None else _number(value, name)


def _count(value: Any, name: str) -> int:
    if type(value) is not int:
        raise ValueError(f"{name} is {value!r}, not a count")
    return value


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} is {value!r}, not a string")
    return value


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if type(value) is dict or isinstance(value, Mapping):
        return value
    raise ValueError(f"{name} is {type(value).__name__}, not an object")


def _field(data: Mapping[str, Any], name: str) -> Any:
    if name not in data:
        raise ValueError(f"it has no {name}")
    return data[name]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _estimate_json(e: Estimate) -> dict[str, float | int | None]:
    return {"value": _finite(e.value), "low": _finite(e.low), "high": _finite(e.high), "n": e.n}


def _estimate(data: Any, name: str) -> Estimate:
    d = _mapping(data, name)
    value, low, high, n = d.get("value"), d.get("low"), d.get("high"), d.get("n")
    if type(value) is float and type(low) is float and type(high) is float \
            and type(n) is int:  # the common case, checked at a fraction of the cost
        return Estimate(value, low, high, n)
    return Estimate(_number(value, f"{name}.value"),
                    _number(low, f"{name}.low", null=-math.inf),
                    _number(high, f"{name}.high", null=math.inf),
                    _count(n, f"{name}.n"))


def _counts(values: Any, name: str) -> list[int]:
    if type(values) is list and set(map(type, values)) <= {int}:
        return values
    raise ValueError(f"{name} is {values!r}, not a list of counts")


def _histogram(data: Any) -> LatencyHistogram:
    d = _mapping(data, "histogram")
    keys = _counts(d.get("keys"), "histogram.keys")
    counts = _counts(d.get("counts"), "histogram.counts")
    if len(keys) != len(counts):
        raise ValueError("histogram keys and counts differ in length")
    return LatencyHistogram(_number(d.get("relative_accuracy"), "histogram.relative_accuracy"),
                            _count(d.get("zero_count"), "histogram.zero_count"),
                            dict(zip(keys, counts, strict=True)))


@dataclass(frozen=True)
class StoredVerdict:
    """An SLO of the test and how the result fared: pass, fail or inconclusive."""

    slo: str
    outcome: str


@dataclass(frozen=True)
class ThroughputWindow:
    """The measuring window's completions per interval (``Result.throughput_bins``)."""

    width_s: float
    counts: tuple[int, ...]

    def rates(self) -> list[float]:
        """Completions per second in each interval; none when the window cannot give any."""
        if not self.counts or not self.width_s > 0:
            return []
        return [c / (self.width_s / len(self.counts)) for c in self.counts]


@dataclass(frozen=True)
class StoredLag:
    """A scheduled run's schedule lag (``result.ScheduleLag``, without its judging bound)."""

    p50_s: float
    p99_s: float
    max_s: float
    late: int
    count: int
    late_threshold_s: float

    @property
    def late_share(self) -> float:
        return self.late / self.count if self.count else 0.0


@dataclass(frozen=True)
class StoredColdStarts:
    count: int
    latency_p50_s: float


@dataclass(frozen=True)
class Entry:
    """One result of one test as the history keeps it: what identifies it (``key``, from
    ``identity``), its summary statistics, its histogram (for comparisons that pool runs), and
    the SLO verdicts of its test. Fields added after schema 1 default to what a result without
    them means (no timeout, no window, no schedule)."""

    nodeid: str
    key: str
    identity: Mapping[str, Any]
    backend: str
    target: str
    target_profile: Mapping[str, Any]
    workload: Mapping[str, Any]
    count: int
    ok_count: int
    errors: Mapping[str, int]
    duration_s: float
    throughput: float
    success_ratio: float
    latency_s: Mapping[str, Estimate]
    histogram: LatencyHistogram = field(repr=False)
    slo: tuple[StoredVerdict, ...] = ()
    censored: int = 0
    timeout_s: float | None = None  # None: the requests had no timeout
    throughput_window: ThroughputWindow | None = None
    offered_rate: float | None = None
    schedule_lag: StoredLag | None = None
    valid: bool = True
    invalid_reason: str | None = None
    cold_starts: StoredColdStarts | None = None
    cost: CostEstimate | None = None

    def value(self, metric: str) -> float:
        """A comparable metric's value (``metrics.COMPARABLE``); NaN when the entry has none."""
        if metric in LATENCY_STATS:
            return self.latency_s[metric].value
        if metric == "usd_per_million":
            return self.cost.usd_per_million if self.cost is not None else math.nan
        if metric == "throughput":
            return self.throughput
        if metric == "success_ratio":
            return self.success_ratio
        return math.nan

    def to_json(self) -> dict[str, Any]:
        lag = self.schedule_lag
        window = self.throughput_window
        data: dict[str, Any] = {
            "nodeid": self.nodeid,
            "key": self.key,
            "identity": _strict(self.identity),
            "backend": self.backend,
            "target": self.target,
            "target_profile": _strict(self.target_profile),
            "workload": _strict(self.workload),
            "count": self.count,
            "ok_count": self.ok_count,
            "errors": dict(self.errors),
            "censored": self.censored,
            "timeout_s": None if self.timeout_s is None else _finite(self.timeout_s),
            "duration_s": _finite(self.duration_s),
            "throughput": _finite(self.throughput),
            "throughput_window": None if window is None else {
                "width_s": _finite(window.width_s), "counts": list(window.counts)},
            "offered_rate": None if self.offered_rate is None else _finite(self.offered_rate),
            "success_ratio": _finite(self.success_ratio),
            "latency_s": {name: _estimate_json(e) for name, e in self.latency_s.items()},
            "histogram": self.histogram.to_dict(),
            "schedule_lag": None if lag is None else {
                "p50_s": _finite(lag.p50_s), "p99_s": _finite(lag.p99_s),
                "max_s": _finite(lag.max_s), "late": lag.late, "count": lag.count,
                "late_threshold_s": _finite(lag.late_threshold_s),
                "late_share": lag.late_share},
            "valid": self.valid,
            "invalid_reason": self.invalid_reason,
            "slo": [{"slo": v.slo, "outcome": v.outcome} for v in self.slo],
        }
        if self.cold_starts is not None:
            data["cold_starts"] = {"count": self.cold_starts.count,
                                   "latency_p50_s": _finite(self.cold_starts.latency_p50_s)}
        if self.cost is not None:
            data["cost"] = _strict(self.cost.to_dict())
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        """Read an entry of the current schema (``migrate`` brings older ones there); a field
        of the wrong type or a missing one raises ``ValueError`` naming it."""
        d = _mapping(data, "the entry")
        latency = _mapping(_field(d, "latency_s"), "latency_s")
        window = d.get("throughput_window")
        lag = d.get("schedule_lag")
        cold = d.get("cold_starts")
        cost = d.get("cost")
        try:
            cost_estimate = None if cost is None else CostEstimate.from_dict(
                _mapping(cost, "cost"))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"cost has no {exc}") from None
        errors = _mapping(_field(d, "errors"), "errors")
        return cls(
            nodeid=_text(_field(d, "nodeid"), "nodeid"),
            key=_text(_field(d, "key"), "key"),
            identity=_mapping(_field(d, "identity"), "identity"),
            backend=_text(_field(d, "backend"), "backend"),
            target=_text(_field(d, "target"), "target"),
            target_profile=_mapping(_field(d, "target_profile"), "target_profile"),
            workload=_mapping(_field(d, "workload"), "workload"),
            count=_count(_field(d, "count"), "count"),
            ok_count=_count(_field(d, "ok_count"), "ok_count"),
            errors={str(k): _count(v, f"errors.{k}") for k, v in errors.items()},
            duration_s=_number(_field(d, "duration_s"), "duration_s"),
            throughput=_number(_field(d, "throughput"), "throughput"),
            success_ratio=_number(_field(d, "success_ratio"), "success_ratio"),
            latency_s={name: _estimate(e, f"latency_s.{name}") for name, e in latency.items()},
            histogram=_histogram(_field(d, "histogram")),
            slo=tuple(StoredVerdict(_text(_mapping(v, "slo").get("slo"), "slo.slo"),
                                    _text(_mapping(v, "slo").get("outcome"), "slo.outcome"))
                      for v in _field(d, "slo")),
            censored=_count(d.get("censored", 0), "censored"),
            timeout_s=_optional(d.get("timeout_s"), "timeout_s"),
            throughput_window=None if window is None else ThroughputWindow(
                _number(_mapping(window, "throughput_window").get("width_s"),
                        "throughput_window.width_s"),
                tuple(_counts(window.get("counts") or [], "throughput_window.counts"))),
            offered_rate=_optional(d.get("offered_rate"), "offered_rate"),
            schedule_lag=None if lag is None else _stored_lag(_mapping(lag, "schedule_lag")),
            valid=bool(d.get("valid", True)),
            invalid_reason=None if d.get("invalid_reason") is None else _text(
                d["invalid_reason"], "invalid_reason"),
            cold_starts=None if cold is None else StoredColdStarts(
                _count(_mapping(cold, "cold_starts").get("count"), "cold_starts.count"),
                _number(cold.get("latency_p50_s"), "cold_starts.latency_p50_s")),
            cost=cost_estimate,
        )


def _stored_lag(lag: Mapping[str, Any]) -> StoredLag:
    def number(k: str) -> float:
        return _number(lag.get(k), f"schedule_lag.{k}")

    return StoredLag(number("p50_s"), number("p99_s"), number("max_s"),
                     _count(lag.get("late"), "schedule_lag.late"),
                     _count(lag.get("count"), "schedule_lag.count"), number("late_threshold_s"))


def make_entry(nodeid: str, result: Result, verdicts: Iterable[Verdict], backend: str, *,
               repeat: int = 0) -> Entry:
    """One result as a history entry. ``repeat``: how many results of the same identity the
    test produced before this one (a test that runs one workload several times, e.g. a cold
    start per repetition), so each is compared with its own counterpart."""
    lat = result.latency
    ident = identity(nodeid, result.target, result.target_profile, backend, result.workload)
    if repeat:
        ident["repeat"] = repeat
    lag = result.schedule_lag
    cold = result.cold_starts
    return Entry(
        nodeid=nodeid,
        key=entry_key(ident),
        identity=ident,
        backend=backend,
        target=result.target,
        target_profile=dict(result.target_profile),
        workload=dict(result.workload),
        count=result.count,
        ok_count=result.ok_count,
        errors=dict(result.errors),
        censored=result.censored,
        timeout_s=result.timeout_s if math.isfinite(result.timeout_s) else None,
        duration_s=result.duration_s,
        throughput=result.throughput,
        throughput_window=ThroughputWindow(result.window_s, tuple(result.throughput_bins)),
        offered_rate=result.offered_rate,
        success_ratio=result.success_ratio,
        latency_s={name: getattr(lat, name) for name in LATENCY_STATS},
        histogram=result.histogram + LatencyHistogram(result.histogram.relative_accuracy),
        schedule_lag=None if lag is None else StoredLag(
            lag.p50_s, lag.p99_s, lag.max_s, lag.late, lag.count, lag.late_threshold_s),
        valid=result.valid,
        invalid_reason=result.invalid_reason,
        slo=tuple(StoredVerdict(v.slo.text, v.outcome) for v in verdicts),
        cold_starts=None if cold is None else StoredColdStarts(cold.count,
                                                               cold.latency.p50.value),
        cost=result.cost,
    )


_KEPT = "it was left as it is. Move it aside (or repair it) to start a new history."


class Entries(Sequence[Entry]):
    """A run's entries. Read from a history, each becomes an ``Entry`` when first used: a
    comparison reads a few runs' entries out of thousands (found by key without reading the
    rest), and a run written back keeps the entries nobody used as they were. An entry that
    cannot be read raises ``HistoryError`` when it is used, naming it."""

    def __init__(self, items: Iterable[Entry | Mapping[str, Any]] = (), *,
                 where: str = "the run") -> None:
        self._items: list[Entry | Mapping[str, Any]] = list(items)
        self._where = where

    @overload
    def __getitem__(self, index: int) -> Entry: ...

    @overload
    def __getitem__(self, index: slice) -> Entries: ...

    def __getitem__(self, index: int | slice) -> Entry | Entries:
        if isinstance(index, slice):
            return self.kept(range(len(self._items))[index])
        item = self._items[index]
        if isinstance(item, Entry):
            return item
        try:
            entry = Entry.from_json(item)
        except ValueError as exc:
            raise HistoryError(f"{self._where}: entry {range(len(self._items))[index]}: "
                               f"{exc}; {_KEPT}") from None
        self._items[index] = entry
        return entry

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Entries({len(self._items)} of {self._where})"

    def key(self, index: int) -> str:
        item = self._items[index]
        return item.key if isinstance(item, Entry) else str(item["key"])

    def find(self, key: str) -> Entry | None:
        """The entry with ``key``, if any (only that one is read)."""
        for i in range(len(self._items)):
            if self.key(i) == key:
                return self[i]
        return None

    def kept(self, indices: Iterable[int]) -> Entries:
        """These entries only, still unread where they were."""
        return Entries((self._items[i] for i in indices), where=self._where)

    def to_json(self) -> list[dict[str, Any]]:
        return [item.to_json() if isinstance(item, Entry) else dict(item)
                for item in self._items]


@dataclass(frozen=True, eq=False)
class Run:
    """One pytest session's results, with what makes its timings comparable: the machine, the
    git commit, the backend, and metadata from ``pytest_servebench_update_metadata``."""

    run_id: str
    created_utc: str
    entries: Entries
    name: str | None = None
    git: Mapping[str, Any] = field(default_factory=dict)
    machine: Mapping[str, Any] = field(default_factory=dict)
    backend: str = ""
    python: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def entry(self, key: str) -> Entry | None:
        """This run's entry with ``key``, if any."""
        return self.entries.find(key)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "name": self.name, "created_utc": self.created_utc,
                "git": _strict(self.git), "machine": _strict(self.machine),
                "backend": self.backend, "python": self.python,
                "metadata": _strict(self.metadata), "entries": self.entries.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "the run") -> Run:
        """Read a run of the current schema (``migrate`` brings older ones there): its own
        fields now, ``ValueError`` naming what is wrong; its entries when they are used."""
        d = _mapping(data, "the run")
        entries = _field(d, "entries")
        if not isinstance(entries, list) or not all(
                isinstance(e, Mapping) and isinstance(e.get("key"), str) for e in entries):
            raise ValueError("its entries are not a list of objects with keys")
        name = d.get("name")
        return cls(run_id=_text(_field(d, "run_id"), "run_id"),
                   created_utc=_text(_field(d, "created_utc"), "created_utc"),
                   entries=Entries(entries, where=where),
                   name=None if name is None else _text(name, "name"),
                   git=_mapping(d.get("git") or {}, "git"),
                   machine=_mapping(d.get("machine") or {}, "machine"),
                   backend=_text(d.get("backend", ""), "backend"),
                   python=_text(d.get("python", ""), "python"),
                   metadata=_mapping(d.get("metadata") or {}, "metadata"))


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


def new_run(entries: Sequence[Entry], *, backend: str, name: str | None = None,
            metadata: Mapping[str, Any] | None = None) -> Run:
    return Run(run_id=uuid.uuid4().hex[:12], name=name,
               created_utc=datetime.now(UTC).isoformat(timespec="seconds"), git=_git(),
               machine=machine_fingerprint(), backend=backend, python=sys.version.split()[0],
               metadata=dict(metadata or {}), entries=Entries(entries))


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


def find_run(runs: Sequence[Run], ref: str | None) -> int:
    """The index of the run ``ref`` names: its id, or its name (the newest run of that name);
    the newest run when ``ref`` is None. ``LookupError`` when there is none.

    >>> runs = [Run("a1", "2026-11-25T10:00:00Z", Entries(), name="main"),
    ...         Run("b2", "2026-11-25T11:00:00Z", Entries(), name="main")]
    >>> find_run(runs, "main"), find_run(runs, "a1"), find_run(runs, None)
    (1, 0, 1)
    """
    if ref is None:
        if not runs:
            raise LookupError("the history holds no runs")
        return len(runs) - 1
    for i in range(len(runs) - 1, -1, -1):
        if ref in (runs[i].run_id, runs[i].name):
            return i
    raise LookupError(f"no run with id or name {ref!r} in the history")


@dataclass(frozen=True)
class History:
    """A history file. ``runs()`` reads it; ``append()`` adds a run under the lock."""

    path: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> History:
        return cls(Path(path))

    def _lock(self) -> Any:
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT_S)

    def _read(self) -> dict[str, Any]:
        """The history's data, migrated to the current schema; see ``runs``."""
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

    def runs(self) -> list[Run]:
        """The history's runs, oldest first, migrated to the current schema. Anything that
        makes it unusable (unreadable, not JSON, binary, the wrong shape, a directory, a newer
        version) raises ``HistoryError``; the file is never touched."""
        runs = []
        for i, run in enumerate(self._read()["runs"]):
            where = f"{self.path} is not a pytest-servebench history: run {i}"
            try:
                runs.append(Run.from_json(run, where=where))
            except ValueError as exc:
                raise HistoryError(f"{where}: {exc}; {_KEPT}") from None
        return runs

    def find(self, ref: str | None = None) -> Run:
        """The run ``ref`` names (its id or name, the newest of that name; None: the newest
        run). ``LookupError`` names the file when there is none."""
        runs = self.runs()
        try:
            return runs[find_run(runs, ref)]
        except LookupError as exc:
            raise LookupError(f"{self.path}: {exc}") from None

    def append(self, run: Run, *, keep: int = DEFAULT_KEEP) -> None:
        """Add a run, then keep the last ``keep`` runs of every test key. Whatever stops the
        write (the folder cannot be made, another run holds the lock too long, the disk is
        full) raises ``HistoryError``; the file as it was is kept."""
        from filelock import Timeout

        try:
            with self._lock():
                self._write(retain([*self.runs(), run], keep))
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

    def _write(self, runs: Sequence[Run]) -> None:
        data = {"schema_version": SCHEMA_VERSION, "runs": [r.to_json() for r in runs]}
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp",
                                   dir=self.path.parent)
        try:
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared history is not
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, separators=(",", ":"), allow_nan=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def retain(runs: list[Run], keep: int) -> list[Run]:
    """Drop entries beyond the newest ``keep`` per key, and runs left with no entries."""
    if keep <= 0:
        return runs
    seen: dict[str, int] = {}
    kept_runs = []
    for run in reversed(runs):
        kept = []
        for i in range(len(run.entries)):
            key = run.entries.key(i)
            n = seen.get(key, 0)
            if n < keep:
                kept.append(i)
            seen[key] = n + 1
        if kept:
            kept_runs.append(run if len(kept) == len(run.entries)
                             else replace(run, entries=run.entries.kept(kept)))
    kept_runs.reverse()
    return kept_runs
