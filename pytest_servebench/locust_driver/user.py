"""What runs inside a Locust worker: one ``ServebenchUser`` per worker executes that worker's
share of the workload (``plan.WorkerPlan``) on gevent and keeps its requests' records. When the
share is done it tells the master (``DONE_MESSAGE``); the master answers with the run's
measuring window (``WINDOW_MESSAGE``) and the worker ships its ``tally.Tally`` over it
(``TALLY_MESSAGE``): histograms and counts, whatever the number of requests. Its records go too
(``ROWS_MESSAGE``, in chunks, after the last request) only when the run asks for them.
Importing this module imports Locust (and gevent's monkey-patching): only the driver's own
master and worker processes do, never a pytest process.

Rules kept from the in-process engine: a scheduled request is timed from its intended send time
(a stalled server shows in the latency, however Locust paces users); an arrival that finds the
in-flight bound full is dropped and counted (as k6 does), not delayed; every request has a total
deadline; the run ends by its time limit whatever the target does; a request still out at the
hard deadline is counted as cancelled.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import gevent
import gevent.event
import gevent.pool
from locust import User, task
from locust.exception import StopUser

from ..pacing import GeventPacer, schedule_rate
from ..records import Record
from ..target import Payload, Reply
from .client import Sender, sender_for
from .plan import WorkerPlan
from .tally import Window, finish_info, row_of, tally

ROWS_MESSAGE = "servebench_rows"
DONE_MESSAGE = "servebench_done"
FAILED_MESSAGE = "servebench_failed"
PLAN_MESSAGE = "servebench_plan"
WINDOW_MESSAGE = "servebench_window"
TALLY_MESSAGE = "servebench_tally"
PROGRESS_MESSAGE = "servebench_progress"
PROGRESS_INTERVAL_S = 0.25
_P50_SAMPLE = 200  # successful latencies per progress message, at most
ROWS_PER_MESSAGE = 5000
_DETAIL = 200

_NOT_SENT = Reply.failure("not_sent", "the run's time limit came first")
_CANCELLED = Reply.failure("cancelled", "still outstanding at the run's hard deadline")

# One worker process serves one run: the plan arrives by message before the user starts, and
# the finished share stays here until the master has asked for its tally.
_plan: dict[str, Any] = {}
_plan_ready = gevent.event.Event()
_finished: list[_Execution] = []


def on_plan(environment: Any, msg: Any, **_: Any) -> None:
    _plan.clear()
    _plan.update(msg.data)
    _plan_ready.set()


def on_window(environment: Any, msg: Any, **_: Any) -> None:
    """The master's window: ship this worker's tally over it (in a greenlet of its own, so
    that the worker's message loop keeps answering)."""
    if _finished:
        gevent.spawn(_finished[-1].send_tally, Window(*msg.data["window"]),
                     int(msg.data["round"]))


class _Execution:
    """One worker's share, timed on this machine's clock from the run's common start."""

    def __init__(self, environment: Any, spec: dict[str, Any]) -> None:
        self.environment = environment
        self.index = int(environment.runner.worker_index)
        self.plan = WorkerPlan.from_json(spec["plans"][str(self.index)])
        self.payloads = [Payload(bytes(b), str(ct)) for b, ct in spec["payloads"]]
        self.timeout_s = float(spec["timeout_s"])
        self.time_limit_s = float(spec["time_limit_s"])
        self.late_threshold_s = float(spec["late_threshold_s"])
        self.ship_records = bool(spec.get("records"))
        self.show_progress = bool(spec.get("progress"))
        self.report_to_locust = bool(spec.get("report_to_locust"))
        self.request_name = str(spec.get("request_name") or "servebench")
        # perf_counter() at the common start (a unix time, the same clock on every worker of
        # this machine; workers elsewhere need synchronised clocks)
        self.origin = time.perf_counter() - (time.time() - float(spec["t0"]))
        self.pacer = GeventPacer(self.origin, schedule_rate([a[1] for a in self.plan.arrivals]))
        self.sender: Sender = sender_for(spec["target"])
        self.records: list[Record] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_out: float | None = None
        self.progress_seen = self.progress_errors = 0

    def now(self) -> float:
        return time.perf_counter() - self.origin

    def one(self, index: int, warmup: bool, intended: float) -> None:
        payload = self.payloads[index % len(self.payloads)]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        sent = self.now()
        try:
            reply = self.sender.send(payload, timeout_s=self.timeout_s)
        except gevent.GreenletExit:  # the run's hard deadline: counted, as the engine does
            self.records.append(Record(index, warmup, intended, sent, self.now(), _CANCELLED))
            raise
        except Exception as exc:  # the client broke its contract: count it, keep going
            reply = Reply.failure("client_error", f"{type(exc).__name__}: {exc}"[:_DETAIL])
        finally:
            self.in_flight -= 1
        done = self.now()
        self.records.append(Record(index, warmup, intended, sent, done, reply))
        if self.report_to_locust:  # Locust's own statistics (its CSV and UI), rounded by it
            self.environment.events.request.fire(
                request_type="POST", name=self.request_name,
                response_time=(done - intended) * 1000, response_length=0,
                exception=None if reply.ok else RuntimeError(reply.error), context={})

    def _progress(self) -> None:
        while True:
            gevent.sleep(PROGRESS_INTERVAL_S)
            self.send_progress()

    def send_progress(self) -> None:
        """The run so far, for the master's progress line: counts, and a sample of the
        latencies of the replies since the last message (never a message per request)."""
        new = self.records[self.progress_seen:]
        self.progress_seen += len(new)
        self.progress_errors += sum(1 for r in new if not r.reply.ok)
        step = max(1, len(new) // _P50_SAMPLE)
        self.environment.runner.send_message(PROGRESS_MESSAGE, {
            "index": self.index, "sent": self.progress_seen + self.in_flight,
            "done": self.progress_seen, "errors": self.progress_errors,
            "latencies_s": [r.latency_s for r in new[::step] if r.reply.ok]})

    def run(self) -> None:
        ticker = gevent.spawn(self._progress) if self.show_progress else None
        # As in the in-process engine: a full collection over the share's records would stall
        # every greenlet of the worker for milliseconds, in the middle of the measurement.
        collecting = gc.isenabled()
        gc.disable()
        try:
            if self.plan.kind == "scheduled":
                self._scheduled()
            else:
                self._closed()
        finally:
            if collecting:
                gc.enable()
            self.sender.close()
            self.pacer.close()
            if ticker is not None:
                ticker.kill()
        _finished.append(self)
        if self.show_progress:
            self.send_progress()  # the final counts
        runner = self.environment.runner
        if self.ship_records:
            rows = [row_of(r) for r in self.records]
            for k in range(0, len(rows), ROWS_PER_MESSAGE):
                runner.send_message(ROWS_MESSAGE, {"index": self.index,
                                                   "rows": rows[k:k + ROWS_PER_MESSAGE]})
                gevent.sleep(0)
        runner.send_message(DONE_MESSAGE, {
            "index": self.index, "records": len(self.records),
            "max_in_flight": self.max_in_flight, "first_out": self.first_out,
            **finish_info(self.records)})

    def send_tally(self, window: Window, round_: int) -> None:
        counted = tally(self.records, window, timeout_s=self.timeout_s,
                        scheduled=self.plan.kind == "scheduled",
                        late_threshold_s=self.late_threshold_s)
        self.environment.runner.send_message(TALLY_MESSAGE, {
            "index": self.index, "round": round_, "tally": counted.to_json()})

    def wait_until(self, t: float) -> None:
        """Return at ``t`` (seconds from the common start): on a kernel timer or by a spin,
        as this worker's share of the schedule is sparse or dense (``pacing.GeventPacer``)."""
        self.pacer.wait_until(t)

    def _scheduled(self) -> None:
        """The schedule is relayed from greenlet to greenlet: each waits for its arrival,
        hands the rest of the schedule to a new (raw) greenlet and sends its own request at
        once, so no switch stands between a request's time and its send (a dispatcher that
        spawned a sender per arrival added one, about 12 us of schedule lag here)."""
        arrivals = self.plan.arrivals
        stop_at = min(self.time_limit_s, (arrivals[-1][1] if arrivals else 0.0)
                      + self.timeout_s)
        flying: set[Any] = set()
        all_done = gevent.event.Event()

        def relay(k: int) -> None:
            try:
                while k < len(arrivals):
                    index, intended, warmup = arrivals[k]
                    self.wait_until(intended)
                    now = self.now()
                    if now >= stop_at:
                        self.records.extend(Record(i, w, t, now, now, _NOT_SENT)
                                            for i, t, w in arrivals[k:])
                        return
                    if self.in_flight >= self.plan.max_in_flight:
                        self.records.append(Record(
                            index, warmup, intended, now, now, Reply.failure(
                                "dropped",
                                f"{self.plan.max_in_flight} requests already in flight")))
                        k += 1
                        continue
                    if k + 1 < len(arrivals):
                        flying.add(gevent.spawn_raw(relay, k + 1))
                    self.one(index, warmup, intended)
                    return
            finally:
                flying.discard(gevent.getcurrent())
                if not flying:
                    all_done.set()

        if not arrivals:
            return
        flying.add(gevent.spawn_raw(relay, 0))
        hard = stop_at + self.timeout_s + 1.0
        all_done.wait(timeout=max(0.0, hard - self.now()))
        gevent.killall(list(flying), block=True, timeout=5)

    def _closed(self) -> None:
        plan = self.plan
        counts = {"issued": 0, "measured": 0}
        measure_start: list[float] = []
        me = self.index

        def next_slot() -> tuple[int, bool] | None:
            now = self.now()
            if now >= self.time_limit_s:
                return None
            warm = counts["issued"] < plan.warmup_requests or now < plan.warmup_s
            if not warm:
                if not measure_start:
                    measure_start.append(now)
                if plan.requests is not None and counts["measured"] >= plan.requests:
                    return None
                if plan.duration_s is not None and now - measure_start[0] >= plan.duration_s:
                    return None
                counts["measured"] += 1
            counts["issued"] += 1
            # a global index: this worker's count interleaved with the others'
            return (counts["issued"] - 1) * 1024 + me, warm

        def user() -> None:
            while (slot := next_slot()) is not None:
                self.one(slot[0], slot[1], self.now())
            if self.first_out is None:
                self.first_out = self.now()

        if plan.users == 0:
            return
        delay = -self.now()
        if delay > 0:
            gevent.sleep(delay)
        group = gevent.pool.Group()
        for _ in range(plan.users):
            group.spawn(user)
        hard = self.time_limit_s + self.timeout_s + 1.0
        group.join(timeout=max(0.0, hard - self.now()))
        group.kill(block=True, timeout=5)


class ServebenchUser(User):
    """One per worker: waits for the master's plan, runs this worker's share once, reports."""

    host = "http://127.0.0.1"  # unused: the plan names the URL

    @task
    def run_share(self) -> None:
        if not _plan_ready.wait(timeout=120):
            raise StopUser()
        try:
            _Execution(self.environment, dict(_plan)).run()
        except Exception as exc:  # the master ends the run with it, rather than wait it out
            self.environment.runner.send_message(FAILED_MESSAGE, {
                "index": int(self.environment.runner.worker_index),
                "error": f"{type(exc).__name__}: {exc}"[:_DETAIL * 5]})
            raise
        finally:
            _plan_ready.clear()  # one share per plan: Locust would call this task again
        raise StopUser()


__all__ = ["DONE_MESSAGE", "FAILED_MESSAGE", "PLAN_MESSAGE", "PROGRESS_MESSAGE", "ROWS_MESSAGE",
           "TALLY_MESSAGE", "WINDOW_MESSAGE", "ServebenchUser", "on_plan", "on_window"]
