"""The driver's processes: ``python -m pytest_servebench.locust_driver.runner master|worker``.

The master is Locust's ``MasterRunner``: it waits (bounded) for the expected workers, sends each
its share with a custom message, starts one ``ServebenchUser`` per worker through Locust's own
dispatch, waits (bounded) for every worker to finish, works out the measuring window from what
they say (``tally.window_of``), gathers their tallies over it and adds them up, and writes the
sum (and the records, when the run asked for them) to ``--out`` as JSON. A worker is Locust's
``WorkerRunner`` connected to the master's address; it runs until the master quits.
Exit status: 0 done, 3 the workers did not all come, 4 the run did not finish in time, 5 a
worker's share failed (its error on the master's standard error).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import locust  # noqa: F401  (its import monkey-patches the standard library with gevent)
from locust.env import Environment

from ..histogram import LatencyHistogram
from .tally import Tally, Window, fallback_window, window_of
from .user import (
    DONE_MESSAGE,
    FAILED_MESSAGE,
    PLAN_MESSAGE,
    PROGRESS_MESSAGE,
    ROWS_MESSAGE,
    TALLY_MESSAGE,
    WINDOW_MESSAGE,
    ServebenchUser,
    on_plan,
    on_window,
)

EXIT_NO_WORKERS = 3
EXIT_LATE = 4
EXIT_WORKER_FAILED = 5
TALLY_TIMEOUT_S = 60.0
BEAT_S = 0.25


class _Status:
    """The master's sign of life and the run so far, rewritten every ``BEAT_S`` into
    ``--status`` (JSON, replaced whole): the parent process shows it as progress, and takes a
    file that stops changing for a master that hangs."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.beat = 0
        self.phase = "starting"
        self.t0: float | None = None
        self.workers: dict[int, dict[str, Any]] = {}
        self.latencies = LatencyHistogram()

    def on_progress(self, environment: Any, msg: Any, **_: Any) -> None:
        self.workers[int(msg.data["index"])] = msg.data
        for x in msg.data["latencies_s"]:
            self.latencies.record(max(0.0, float(x)))

    def write(self) -> None:
        if self.path is None:
            return
        self.beat += 1
        ws = self.workers.values()
        data = {"beat": self.beat, "phase": self.phase,
                "elapsed_s": None if self.t0 is None else time.time() - self.t0,
                "sent": sum(int(w["sent"]) for w in ws),
                "done": sum(int(w["done"]) for w in ws),
                "errors": sum(int(w["errors"]) for w in ws),
                "p50_s": self.latencies.quantile(0.5) if self.latencies.count else None}
        tmp = Path(self.path + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)

    def loop(self) -> None:
        while True:
            self.write()
            gevent.sleep(BEAT_S)


def _master(args: argparse.Namespace) -> int:
    spec = json.loads(Path(args.spec).read_text())
    expected = int(spec["workers"])
    env = Environment(user_classes=[ServebenchUser])
    runner = env.create_master_runner(master_bind_host=args.bind, master_bind_port=args.port)
    rows: list[list[Any]] = []
    done: dict[int, dict[str, Any]] = {}
    tallies: dict[int, dict[str, Any]] = {}

    def on_rows(environment: Any, msg: Any, **_: Any) -> None:
        rows.extend(msg.data["rows"])

    def on_done(environment: Any, msg: Any, **_: Any) -> None:
        done[int(msg.data["index"])] = msg.data

    def on_tally(environment: Any, msg: Any, **_: Any) -> None:
        tallies[int(msg.data["index"])] = msg.data

    failed: dict[int, str] = {}

    def on_failed(environment: Any, msg: Any, **_: Any) -> None:
        failed[int(msg.data["index"])] = str(msg.data["error"])

    runner.register_message(ROWS_MESSAGE, on_rows)
    runner.register_message(DONE_MESSAGE, on_done)
    runner.register_message(TALLY_MESSAGE, on_tally)
    runner.register_message(FAILED_MESSAGE, on_failed)
    status = _Status(args.status)
    runner.register_message(PROGRESS_MESSAGE, status.on_progress)
    beating = gevent.spawn(status.loop)
    csv_writer = csv_greenlet = None
    if spec.get("csv_prefix"):
        from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

        csv_writer = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, spec["csv_prefix"],
                                        full_history=False)
        csv_greenlet = gevent.spawn(csv_writer)  # rewrites the files every second, forever
    deadline = time.monotonic() + float(spec["start_timeout_s"])
    while len(runner.clients.ready) < expected:
        if time.monotonic() >= deadline:
            print(f"servebench: {len(runner.clients.ready)} of {expected} Locust workers "
                  f"connected to {args.bind}:{args.port} within {spec['start_timeout_s']:g} s",
                  file=sys.stderr, flush=True)
            runner.quit()
            return EXIT_NO_WORKERS
        gevent.sleep(0.05)
    # Each ready worker's Locust index gets the next share of the plan.
    indexes = sorted(runner.get_worker_index(c.id)  # type: ignore[no-untyped-call]
                     for c in runner.clients.ready)[:expected]
    plans = {str(ix): {**spec["plans"][k], "index": ix} for k, ix in enumerate(indexes)}
    t0 = time.time() + float(spec.get("start_delay_s", 1.0))
    payloads = [[base64.b64decode(b), ct] for b, ct in spec["payloads"]]
    runner.send_message(PLAN_MESSAGE, {
        "plans": plans, "t0": t0, "target": spec["target"], "payloads": payloads,
        "timeout_s": spec["timeout_s"], "time_limit_s": spec["time_limit_s"],
        "late_threshold_s": spec["late_threshold_s"], "records": bool(spec["records"]),
        "progress": args.status is not None,
        "report_to_locust": bool(csv_writer),
        "request_name": spec.get("request_name", "servebench")})
    runner.start(expected, spawn_rate=max(expected, 100))
    status.phase, status.t0 = "running", t0
    finish_by = (time.monotonic() + (t0 - time.time()) + float(spec["time_limit_s"])
                 + float(spec["timeout_s"]) + 10.0)
    while len(done) < expected and time.monotonic() < finish_by and not failed:
        gevent.sleep(0.05)
    if failed:
        for index, error in sorted(failed.items()):
            print(f"servebench: worker {index}'s share failed: {error}", file=sys.stderr,
                  flush=True)
        beating.kill()
        runner.quit()
        return EXIT_WORKER_FAILED
    window = total = None
    status.phase = "tallying"
    if len(done) == expected:
        shape = spec["workload"]
        window = window_of(shape["kind"], done.values(), warmup_s=float(shape["warmup_s"]),
                           duration_s=shape["duration_s"])
        total = _gather(runner, window, 0, tallies, expected)
        if total is not None and not window.whole and total.in_window == 0:
            window = fallback_window(done.values())  # nothing ok in the steady state
            total = _gather(runner, window, 1, tallies, expected)
    if csv_writer is not None and csv_greenlet is not None:
        from locust.runners import WORKER_REPORT_INTERVAL
        from locust.stats import CSV_STATS_INTERVAL_SEC

        # The workers' last statistics arrive with their next report; the writer's next pass
        # puts them in the files.
        gevent.sleep(WORKER_REPORT_INTERVAL + CSV_STATS_INTERVAL_SEC + 0.5)
        csv_greenlet.kill()
        csv_writer.close_files()
    out = {"t0": t0, "rows": rows, "done": {str(k): v for k, v in done.items()},
           "expected": expected, "worker_indexes": indexes,
           "window": None if window is None else [window.start_s, window.end_s, window.whole],
           "tally": None if total is None else total.to_json()}
    status.phase = "writing"
    status.write()
    tmp = Path(args.out + ".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, args.out)
    beating.kill()
    runner.quit()
    return 0 if total is not None else EXIT_LATE


def _gather(runner: Any, window: Window, round_: int, tallies: dict[int, dict[str, Any]],
            expected: int) -> Tally | None:
    """Every worker's tally over ``window``, added up; None when one did not come in time."""
    tallies.clear()
    runner.send_message(WINDOW_MESSAGE, {"window": [window.start_s, window.end_s,
                                                    window.whole], "round": round_})
    deadline = time.monotonic() + TALLY_TIMEOUT_S
    while time.monotonic() < deadline:
        now = [t for t in tallies.values() if t["round"] == round_]
        if len(now) >= expected:
            total = Tally()
            for t in now:
                total.merge(Tally.from_json(t["tally"]))
            return total
        gevent.sleep(0.02)
    return None


def _worker(args: argparse.Namespace) -> int:
    host, _, port = args.master.rpartition(":")
    env = Environment(user_classes=[ServebenchUser])
    runner = env.create_worker_runner(host, int(port))
    runner.register_message(PLAN_MESSAGE, on_plan)
    runner.register_message(WINDOW_MESSAGE, on_window)
    assert runner.greenlet is not None
    runner.greenlet.join()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_servebench.locust_driver.runner")
    sub = parser.add_subparsers(dest="role", required=True)
    master = sub.add_parser("master")
    master.add_argument("--spec", required=True)
    master.add_argument("--out", required=True)
    master.add_argument("--bind", default="127.0.0.1")
    master.add_argument("--port", type=int, required=True)
    master.add_argument("--status", default=None, help="where to keep the run's status")
    worker = sub.add_parser("worker")
    worker.add_argument("--master", required=True, help="HOST:PORT")
    args = parser.parse_args(argv)
    return _master(args) if args.role == "master" else _worker(args)


if __name__ == "__main__":
    sys.exit(main())
