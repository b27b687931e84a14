"""Load from Locust's distributed master and workers, with our workloads and our accounting.

``run_locust_result(target, workload, payloads, workers=N, ...)`` starts a Locust master and N
workers as processes of the run (bound to 127.0.0.1), shares the workload out (``plan.split``),
lets Locust dispatch one ``ServebenchUser`` per worker, and returns the same ``Result`` the
in-process engine gives, read from the workers' mergeable histograms and counts
(``tally``): the messages stay small however many requests the run sends, and every percentile
and interval is within the histograms' 1% of the one the records would give (counts, errors,
throughput and maxima are exact). ``records=True`` ships every request's record too and reads
the result from them, as ``run_locust`` (which returns the engine's ``Recording``) does. Locust
is imported only in those processes (gevent's monkey-patching never reaches pytest's).

Targets: anything with an HTTP ``url``, and functions behind Lambda's Invoke API (the local
platform's or AWS's: SigV4-signed, ``LogType=Tail``, the REPORT line read into each reply, as
the in-process engine does).

Open loop stays open: each worker sends its share of the one seeded schedule at the intended
times, spawning a greenlet per arrival, and latency runs from the intended send time. Locust's
own ``constant_throughput`` pacing would delay a user's next send behind a slow reply and hide
the stall (coordinated omission); the driver does not use it.

Workers on other machines: start the master with ``master_bind`` set to an address they reach
and ``local_workers=0``, then run ``python -m pytest_servebench.locust_driver.runner worker
--master HOST:PORT`` on each; their clocks must agree with the master's (NTP), since every
worker times its share from the run's common start.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..progress import ProgressCallback, Snapshot
from ..records import CompletesRecordings, Recording, closed_window
from ..result import Result, summarize
from ..settings import LATE_THRESHOLD_S, MAX_LATE_SHARE
from ..stats import DEFAULT_CONFIDENCE
from ..target import Payload, Target
from ..workloads import AnyWorkload, ClosedLoop
from .client import target_spec
from .plan import WorkerPlan, split
from .tally import Tally, Window, record_of, result_from, window_of

_RUNNER = "pytest_servebench.locust_driver.runner"
START_TIMEOUT_S = 60.0
# The master rewrites its status file four times a second; one left unchanged this long is a
# hung master (a blocking call in its event loop, a stopped process), ended with its logs
# instead of at the run's outer bound (which the run's time limit sets: 10 minutes by default).
HANG_S = 30.0
WATCH_S = 0.25


def _watch(master: Any, status: Path, *, bound_s: float,
           progress: ProgressCallback | None) -> tuple[int | None, bool]:
    """Wait for the master: (its exit status or None, whether it hung). Each new status goes
    to ``progress`` as a ``Snapshot`` once the run has begun, and a final one at the end."""
    start = last_change = time.monotonic()
    seen = None
    while True:
        try:
            code: int | None = master.wait(timeout=WATCH_S)
            break
        except subprocess.TimeoutExpired:
            code = None
        now = time.monotonic()
        data = _read_status(status)
        if data is not None and data.get("beat") != seen:
            seen, last_change = data.get("beat"), now
            snap = _snapshot(data)
            if snap is not None:
                _show(progress, snap)
        if now - last_change > HANG_S:
            return None, True
        if now - start > bound_s:
            return None, False
    data = _read_status(status)  # the master's last word: the run's final counts
    snap = None if data is None else _snapshot(data)
    if snap is not None and code == 0:
        _show(progress, replace(snap, final=True))
    return code, False


def _read_status(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def _snapshot(data: dict[str, Any]) -> Snapshot | None:
    """A status as a progress snapshot; None before the run's common start."""
    if data.get("elapsed_s") is None or data["elapsed_s"] < 0:
        return None
    p50 = data.get("p50_s")
    return Snapshot(float(data["elapsed_s"]), int(data["sent"]), int(data["done"]),
                    int(data["errors"]), math.nan if p50 is None else float(p50))


def _show(progress: ProgressCallback | None, snap: Snapshot) -> None:
    if progress is None:
        return
    with contextlib.suppress(Exception):  # a broken display must not break the measurement
        progress(snap)


class DriverError(RuntimeError):
    """The distributed run could not be started or did not finish; the message carries the
    master's and the workers' logs."""


def target_url(target: Target) -> str:
    """The URL the workers send to: an HTTP target's ``url``, or a function's Invoke API."""
    spec = _target_spec(target)
    return str(spec["url"] if spec["kind"] == "http" else spec["endpoint_url"])


def _target_spec(target: Target) -> dict[str, Any]:
    try:
        return target_spec(target)
    except ValueError as exc:
        raise DriverError(str(exc)) from None


def recording_from(data: dict[str, Any], workload: AnyWorkload) -> Recording:
    """The master's output, with records, as the engine's ``Recording`` (see
    ``records.Recording`` for the measurement window of each workload kind)."""
    records = tuple(sorted((record_of(row) for row in data["rows"]),
                           key=lambda r: (r.intended_s, r.index)))
    finished = list(data["done"].values())
    wall = max((float(d["wall_s"]) for d in finished), default=0.0)
    max_in_flight = sum(int(d.get("max_in_flight") or 0) for d in finished)
    window = window_of(_kind(workload), finished, warmup_s=workload.warmup_s,
                       duration_s=workload.duration_s)
    if isinstance(workload, ClosedLoop):
        m0, m1, completions = closed_window(records, window.end_s)
        return Recording(records, float(data["t0"]), m0, m1, wall, max_in_flight, False,
                         completions)
    return Recording(records, float(data["t0"]), window.start_s, window.end_s, wall,
                     max_in_flight, True)


def _kind(workload: AnyWorkload) -> str:
    return "closed" if isinstance(workload, ClosedLoop) else "scheduled"


def run_locust(target: Target, workload: AnyWorkload, payloads: Sequence[Payload], *,
               workers: int, timeout_s: float, time_limit_s: float,
               master_bind: str = "127.0.0.1", master_port: int | None = None,
               local_workers: int | None = None, csv_prefix: str | None = None,
               start_timeout_s: float = START_TIMEOUT_S,
               late_threshold_s: float = LATE_THRESHOLD_S,
               progress: ProgressCallback | None = None) -> Recording:
    """Run ``workload`` on a Locust master and ``workers`` workers and return every request's
    record as the engine's ``Recording``; see the module's text. ``progress`` is handed a
    ``progress.Snapshot`` a few times a second while it runs, as the engine's is."""
    data = _drive(target, workload, payloads, workers=workers, timeout_s=timeout_s,
                  time_limit_s=time_limit_s, master_bind=master_bind, master_port=master_port,
                  local_workers=local_workers, csv_prefix=csv_prefix,
                  start_timeout_s=start_timeout_s, late_threshold_s=late_threshold_s,
                  records=True, progress=progress)
    return recording_from(data, workload)


def run_locust_result(target: Target, workload: AnyWorkload, payloads: Sequence[Payload], *,
                      workers: int, timeout_s: float, time_limit_s: float,
                      records: bool = False, confidence: float = DEFAULT_CONFIDENCE,
                      point_estimates: bool = False,
                      late_threshold_s: float = LATE_THRESHOLD_S,
                      max_late_share: float = MAX_LATE_SHARE, master_bind: str = "127.0.0.1",
                      master_port: int | None = None, local_workers: int | None = None,
                      csv_prefix: str | None = None,
                      start_timeout_s: float = START_TIMEOUT_S,
                      progress: ProgressCallback | None = None) -> Result:
    """Run ``workload`` on a Locust master and ``workers`` workers and return its ``Result``:
    from the workers' histograms and counts, or from every request's record with
    ``records=True`` (then kept in ``result.records``, and completed by the target when it
    can fill in what its replies lacked). ``progress``: as ``run_locust``'s. See the module's
    text."""
    data = _drive(target, workload, payloads, workers=workers, timeout_s=timeout_s,
                  time_limit_s=time_limit_s, master_bind=master_bind, master_port=master_port,
                  local_workers=local_workers, csv_prefix=csv_prefix,
                  start_timeout_s=start_timeout_s, late_threshold_s=late_threshold_s,
                  records=records, progress=progress)
    described: dict[str, Any] = {
        "target": target.name, "target_profile": target.describe(),
        "workload": {"str": str(workload), **workload.describe()},
        "confidence": confidence, "point_estimates": point_estimates, "timeout_s": timeout_s,
        "late_threshold_s": late_threshold_s, "max_late_share": max_late_share}
    if records:
        recording = recording_from(data, workload)
        if isinstance(target, CompletesRecordings):
            recording = target.complete(recording)
        return summarize(recording, **described)
    finished = list(data["done"].values())
    start_s, end_s, whole = data["window"]
    return result_from(
        Tally.from_json(data["tally"]), Window(float(start_s), float(end_s), bool(whole)),
        scheduled=not isinstance(workload, ClosedLoop), started_unix_s=float(data["t0"]),
        wall_s=max((float(d["wall_s"]) for d in finished), default=0.0),
        max_in_flight=sum(int(d.get("max_in_flight") or 0) for d in finished), **described)


def _drive(target: Target, workload: AnyWorkload, payloads: Sequence[Payload], *,
           workers: int, timeout_s: float, time_limit_s: float, master_bind: str,
           master_port: int | None, local_workers: int | None, csv_prefix: str | None,
           start_timeout_s: float, late_threshold_s: float, records: bool,
           progress: ProgressCallback | None = None) -> dict[str, Any]:
    """The master's output (see ``runner``): the workers' added tally and window, and their
    records when asked for."""
    from ..backends.local.processes import (
        free_port,
        kill_group,
        log_tail,
        make_workdir,
        new_owner,
        release_port,
        spawn,
    )

    if workers < 1:
        raise ValueError("workers must be >= 1")
    if not payloads:
        raise ValueError("at least one payload is needed")
    from ..pacing import mode as pacing_mode

    pacing_mode()  # a bad SERVEBENCH_PACING: an error here, not in every worker
    reach = _target_spec(target)
    plans: list[WorkerPlan] = split(workload, workers)
    workdir = make_workdir("locust")
    port = master_port or free_port(master_bind if master_bind != "0.0.0.0" else "127.0.0.1")
    owner = new_owner()
    procs: list[tuple[str, Any, Path]] = []
    try:
        spec = {"workers": workers, "plans": [p.to_json() for p in plans], "target": reach,
                "payloads": [[base64.b64encode(p.body).decode(), p.content_type]
                             for p in payloads],
                "timeout_s": timeout_s, "time_limit_s": time_limit_s,
                "start_timeout_s": start_timeout_s, "csv_prefix": csv_prefix,
                "late_threshold_s": late_threshold_s, "records": records,
                "workload": {"kind": _kind(workload), "warmup_s": workload.warmup_s,
                             "duration_s": workload.duration_s},
                "request_name": getattr(target, "name", "servebench")}
        spec_path = workdir / "spec.json"
        spec_path.touch(mode=0o600)  # it may hold credentials
        spec_path.write_text(json.dumps(spec))
        out = workdir / "out.json"
        env = dict(os.environ)
        python = sys.executable
        master_log = workdir / "master.log"
        master = spawn([python, "-m", _RUNNER, "master", "--spec", str(workdir / "spec.json"),
                        "--out", str(out), "--bind", master_bind, "--port", str(port),
                        "--status", str(workdir / "status.json")],
                       env=env, owner=owner, log=master_log)
        procs.append(("master", master, master_log))
        connect = "127.0.0.1" if master_bind in ("0.0.0.0", "*") else master_bind
        for k in range(workers if local_workers is None else local_workers):
            log = workdir / f"worker-{k}.log"
            proc = spawn([python, "-m", _RUNNER, "worker", "--master", f"{connect}:{port}"],
                         env=env, owner=owner, log=log)
            procs.append((f"worker {k}", proc, log))
        bound = start_timeout_s + time_limit_s + timeout_s + 30.0
        code, hung = _watch(master, workdir / "status.json", bound_s=bound,
                            progress=progress)

        def logs() -> str:
            return "\n".join(f"--- {name} ({log.name}) ---\n{log_tail(log, lines=15)}"
                             for name, _, log in procs)

        if hung:
            raise DriverError(f"the Locust master stopped answering: its status went "
                              f"unchanged for {HANG_S:g} s\n{logs()}")
        if code is None:
            raise DriverError(f"the Locust master did not finish within {bound:g} s\n{logs()}")
        if code != 0 or not out.exists():
            why = {3: "not every worker connected in time",
                   4: "not every worker finished in time",
                   5: "a worker's share failed"}.get(code, f"exit status {code}")
            raise DriverError(f"the Locust run failed: {why}\n{logs()}")
        data: dict[str, Any] = json.loads(out.read_text())
        return data
    finally:
        for _, proc, _ in reversed(procs):
            kill_group(proc, grace_s=3.0)
        release_port(port)
        shutil.rmtree(workdir, ignore_errors=True)


__all__ = ["DriverError", "recording_from", "run_locust", "run_locust_result", "target_url"]
