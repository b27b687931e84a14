"""Load from Locust's distributed master and workers, with our workloads and our accounting.

``run_locust(target, workload, payloads, workers=N, ...)`` starts a Locust master and N workers
as processes of the run (bound to 127.0.0.1), shares the workload out (``plan.split``), lets
Locust dispatch one ``ServebenchUser`` per worker, and reads back every request's row: the
``Recording`` it returns is summarised exactly as the in-process engine's, so intervals, SLOs,
history and compare are the same. Locust is imported only in those processes (gevent's
monkey-patching never reaches pytest's).

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
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..records import Record, Recording, closed_window
from ..target import Payload, Reply, Target
from ..workloads import AnyWorkload, ClosedLoop
from .plan import WorkerPlan, split

_RUNNER = "pytest_servebench.locust_driver.runner"
START_TIMEOUT_S = 60.0


class DriverError(RuntimeError):
    """The distributed run could not be started or did not finish; the message carries the
    master's and the workers' logs."""


def target_url(target: Target) -> str:
    """The URL the workers POST to: an HTTP target's or a server's ``url``."""
    url = getattr(target, "url", None)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise DriverError(f"the locust driver sends HTTP requests to a URL; {target.name} "
                          "has none (functions go through the in-process engine for now)")
    return url


def _records(rows: list[list[Any]]) -> tuple[Record, ...]:
    out = []
    for index, warmup, intended, sent, done, ok, error, status, detail in rows:
        reply = (Reply(ok=True, status=status) if ok
                 else Reply.failure(str(error), detail, status=status))
        out.append(Record(int(index), bool(warmup), float(intended), float(sent), float(done),
                          reply))
    out.sort(key=lambda r: (r.intended_s, r.index))
    return tuple(out)


def recording_from(data: dict[str, Any], workload: AnyWorkload) -> Recording:
    """The master's output as the engine's ``Recording`` (see ``records.Recording`` for the
    measurement window of each workload kind)."""
    records = _records(data["rows"])
    wall = max((r.done_s for r in records), default=0.0)
    max_in_flight = sum(int(d.get("max_in_flight") or 0) for d in data["done"].values())
    if isinstance(workload, ClosedLoop):
        outs = [float(d["first_out"]) for d in data["done"].values()
                if d.get("first_out") is not None]
        end = min(outs) if outs else wall
        if workload.duration_s is not None:
            warm_end = max((r.done_s for r in records if r.warmup), default=0.0)
            end = min(end, warm_end + workload.duration_s)
        m0, m1, completions = closed_window(records, end)
        return Recording(records, float(data["t0"]), m0, m1, wall, max_in_flight, False,
                         completions)
    m0 = workload.warmup_s
    measured = [r.done_s for r in records if not r.warmup]
    m1 = max(measured) if measured else m0
    return Recording(records, float(data["t0"]), m0, max(m1, m0), wall, max_in_flight, True)


def run_locust(target: Target, workload: AnyWorkload, payloads: Sequence[Payload], *,
               workers: int, timeout_s: float, time_limit_s: float,
               master_bind: str = "127.0.0.1", master_port: int | None = None,
               local_workers: int | None = None, csv_prefix: str | None = None,
               start_timeout_s: float = START_TIMEOUT_S) -> Recording:
    """Run ``workload`` on a Locust master and ``workers`` workers; see the module's text."""
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
    url = target_url(target)
    plans: list[WorkerPlan] = split(workload, workers)
    workdir = make_workdir("locust")
    port = master_port or free_port(master_bind if master_bind != "0.0.0.0" else "127.0.0.1")
    owner = new_owner()
    procs: list[tuple[str, Any, Path]] = []
    try:
        spec = {"workers": workers, "plans": [p.to_json() for p in plans], "url": url,
                "payloads": [[base64.b64encode(p.body).decode(), p.content_type]
                             for p in payloads],
                "timeout_s": timeout_s, "time_limit_s": time_limit_s,
                "start_timeout_s": start_timeout_s, "csv_prefix": csv_prefix,
                "request_name": getattr(target, "name", "servebench"),
                "method": str(getattr(target, "method", "POST")).upper(),
                "headers": dict(getattr(target, "headers", None) or {})}
        (workdir / "spec.json").write_text(json.dumps(spec))
        out = workdir / "out.json"
        env = dict(os.environ)
        python = sys.executable
        master_log = workdir / "master.log"
        master = spawn([python, "-m", _RUNNER, "master", "--spec", str(workdir / "spec.json"),
                        "--out", str(out), "--bind", master_bind, "--port", str(port)],
                       env=env, owner=owner, log=master_log)
        procs.append(("master", master, master_log))
        connect = "127.0.0.1" if master_bind in ("0.0.0.0", "*") else master_bind
        for k in range(workers if local_workers is None else local_workers):
            log = workdir / f"worker-{k}.log"
            proc = spawn([python, "-m", _RUNNER, "worker", "--master", f"{connect}:{port}"],
                         env=env, owner=owner, log=log)
            procs.append((f"worker {k}", proc, log))
        bound = start_timeout_s + time_limit_s + timeout_s + 30.0
        try:
            code = master.wait(timeout=bound)
        except Exception:
            code = None

        def logs() -> str:
            return "\n".join(f"--- {name} ({log.name}) ---\n{log_tail(log, lines=15)}"
                             for name, _, log in procs)

        if code is None:
            raise DriverError(f"the Locust master did not finish within {bound:g} s\n{logs()}")
        if code != 0 or not out.exists():
            why = {3: "not every worker connected in time",
                   4: "not every worker finished in time"}.get(code, f"exit status {code}")
            raise DriverError(f"the Locust run failed: {why}\n{logs()}")
        data = json.loads(out.read_text())
        return recording_from(data, workload)
    finally:
        for _, proc, _ in reversed(procs):
            kill_group(proc, grace_s=3.0)
        release_port(port)
        shutil.rmtree(workdir, ignore_errors=True)


__all__ = ["DriverError", "recording_from", "run_locust", "target_url"]
