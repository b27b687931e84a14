"""What runs inside a Locust worker: one ``ServebenchUser`` per worker executes that worker's
share of the workload (``plan.WorkerPlan``) on gevent and ships every request's row to the master
with Locust's messages. Importing this module imports Locust (and gevent's monkey-patching):
only the driver's own master and worker processes do, never a pytest process.

Rules kept from the in-process engine: a scheduled request is timed from its intended send time
(a stalled server shows in the latency, however Locust paces users); an arrival that finds the
in-flight bound full is dropped and counted (as k6 does), not delayed; every request has a total
deadline; the run ends by its time limit whatever the target does.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
import gevent.event
import gevent.pool
from locust import User, task
from locust.exception import StopUser

from ..target import Payload, Reply
from .client import KeepAliveClient
from .plan import WorkerPlan

ROWS_MESSAGE = "servebench_rows"
DONE_MESSAGE = "servebench_done"
PLAN_MESSAGE = "servebench_plan"
FLUSH_S = 0.5
_SPIN_S = 0.0015
_DETAIL = 200

# One worker process serves one run: the plan arrives by message before the user starts.
_plan: dict[str, Any] = {}
_plan_ready = gevent.event.Event()


def on_plan(environment: Any, msg: Any, **_: Any) -> None:
    _plan.clear()
    _plan.update(msg.data)
    _plan_ready.set()


class _Execution:
    """One worker's share, timed on this machine's clock from the run's common start."""

    def __init__(self, environment: Any, spec: dict[str, Any]) -> None:
        self.environment = environment
        self.index = int(environment.runner.worker_index)
        self.plan = WorkerPlan.from_json(spec["plans"][str(self.index)])
        self.payloads = [Payload(bytes(b), str(ct)) for b, ct in spec["payloads"]]
        self.timeout_s = float(spec["timeout_s"])
        self.time_limit_s = float(spec["time_limit_s"])
        self.report_to_locust = bool(spec.get("report_to_locust"))
        self.request_name = str(spec.get("request_name") or "servebench")
        # perf_counter() at the common start (a unix time, the same clock on every worker of
        # this machine; workers elsewhere need synchronised clocks)
        self.origin = time.perf_counter() - (time.time() - float(spec["t0"]))
        self.http = KeepAliveClient(str(spec["url"]), headers=dict(spec.get("headers") or {}),
                                    method=str(spec.get("method") or "POST"))
        self.rows: list[list[Any]] = []
        self.sent_rows = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_out: float | None = None

    def now(self) -> float:
        return time.perf_counter() - self.origin

    def one(self, index: int, warmup: bool, intended: float) -> None:
        payload = self.payloads[index % len(self.payloads)]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        sent = self.now()
        try:
            reply = self.http.send(payload, timeout_s=self.timeout_s)
        except gevent.GreenletExit:  # the run's hard deadline: counted, as the engine does
            self.rows.append([index, warmup, intended, sent, self.now(), False, "cancelled",
                              None, "still outstanding at the run's hard deadline"])
            raise
        except Exception as exc:  # the client broke its contract: count it, keep going
            reply = Reply.failure("client_error", f"{type(exc).__name__}: {exc}"[:_DETAIL])
        finally:
            self.in_flight -= 1
        done = self.now()
        self.rows.append([index, warmup, intended, sent, done, reply.ok, reply.error,
                          reply.status, (reply.detail or "")[:_DETAIL] or None])
        if self.report_to_locust:  # Locust's own statistics (its CSV and UI), rounded by it
            self.environment.events.request.fire(
                request_type="POST", name=self.request_name,
                response_time=(done - intended) * 1000, response_length=0,
                exception=None if reply.ok else RuntimeError(reply.error), context={})

    def flush(self) -> None:
        rows = self.rows[self.sent_rows:]
        if rows:
            self.sent_rows += len(rows)
            self.environment.runner.send_message(ROWS_MESSAGE, {"index": self.index,
                                                                "rows": rows})

    def _flusher(self) -> None:
        while True:
            gevent.sleep(FLUSH_S)
            self.flush()

    def run(self) -> None:
        flusher = gevent.spawn(self._flusher)
        try:
            if self.plan.kind == "scheduled":
                self._scheduled()
            else:
                self._closed()
        finally:
            flusher.kill()
            self.http.close()
        self.flush()
        self.environment.runner.send_message(DONE_MESSAGE, {
            "index": self.index, "rows": self.sent_rows, "max_in_flight": self.max_in_flight,
            "first_out": self.first_out})

    def _scheduled(self) -> None:
        # raw greenlets: a Group's bookkeeping is 15 us of schedule lag per request here
        flying: set[Any] = set()

        def send(index: int, warmup: bool, intended: float) -> None:
            try:
                self.one(index, warmup, intended)
            finally:
                flying.discard(gevent.getcurrent())

        arrivals = self.plan.arrivals
        stop_at = min(self.time_limit_s, (arrivals[-1][1] if arrivals else 0.0)
                      + self.timeout_s)
        for k, (index, intended, warmup) in enumerate(arrivals):
            delay = intended - self.now()
            if delay > _SPIN_S:  # gevent's timers fire up to a millisecond late: sleep to
                gevent.sleep(delay - _SPIN_S)  # just short of the send time, then yield
            while self.now() < intended:
                gevent.sleep(0)
            now = self.now()
            if now >= stop_at:
                self.rows.extend([i, w, t, now, now, False, "not_sent",
                                  None, "the run's time limit came first"]
                                 for i, t, w in arrivals[k:])
                break
            if self.in_flight >= self.plan.max_in_flight:
                self.rows.append([index, warmup, intended, now, now, False, "dropped", None,
                                  f"{self.plan.max_in_flight} requests already in flight"])
                continue
            flying.add(gevent.spawn_raw(send, index, warmup, intended))
        hard = stop_at + self.timeout_s + 1.0
        while flying and self.now() < hard:
            gevent.sleep(0.005)
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
        _Execution(self.environment, dict(_plan)).run()
        raise StopUser()


__all__ = ["DONE_MESSAGE", "PLAN_MESSAGE", "ROWS_MESSAGE", "ServebenchUser", "on_plan"]
