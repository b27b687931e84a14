"""The load engine: drives a workload against a target and records every request.

Rules it keeps:
- Scheduled (open-loop, MMPP) requests are timed from their *intended* send time, so a client
  that fell behind (because the server stalled, or the in-flight cap was reached) does not hide
  the stall: the wait shows in latency and in schedule lag (no coordinated omission).
- Every run is bounded: closed loops by count or duration and a time limit; scheduled ones by
  their schedule. Each request has a timeout; at the hard deadline whatever is left is cancelled
  and counted as an error. A dead target gives errors, never a hang.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from .pacing import AsyncPacer, schedule_rate
from .progress import INTERVAL_S as PROGRESS_INTERVAL_S
from .progress import ProgressCallback, Snapshot
from .records import Record, Recording, closed_window
from .target import Client, Payload, Reply, Target
from .workloads import MMPP, AnyWorkload, ClosedLoop, OpenLoop

T = TypeVar("T")

_GRACE_S = 1.0


_NOT_SENT = Reply.failure("not_sent", "the run's time limit came before this request could go")
_CANCELLED = Reply.failure("cancelled", "still outstanding at the run's hard deadline")


class _Run:
    def __init__(self, client: Client, payloads: Sequence[Payload], timeout_s: float,
                 clock: Callable[[], float]) -> None:
        self.client = client
        self.payloads = payloads
        self.timeout_s = timeout_s
        self.clock = clock
        self.t0 = clock()
        self.rows: list[Record] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def now(self) -> float:
        return self.clock() - self.t0

    async def one(self, index: int, warmup: bool, intended: float) -> None:
        payload = self.payloads[index % len(self.payloads)]
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        sent = self.now()
        try:
            reply = await self.client.send(payload, timeout_s=self.timeout_s)
        except asyncio.CancelledError:
            self.rows.append(Record(index, warmup, intended, sent, self.now(), _CANCELLED))
            raise
        except Exception as exc:  # a Client broke its contract; count it, keep going
            reply = Reply.failure("client_error", f"{type(exc).__name__}: {exc}")
        finally:
            self.in_flight -= 1
        self.rows.append(Record(index, warmup, intended, sent, self.now(), reply))


class _ClosedGate:
    """Hands out request slots to the closed loop's users and decides warm-up and the end."""

    def __init__(self, w: ClosedLoop, run: _Run, time_limit_s: float) -> None:
        self.w = w
        self.run = run
        self.time_limit_s = time_limit_s
        self.issued = 0
        self.measured = 0
        self.measure_start: float | None = None
        self.first_out: float | None = None  # when a user first found no more work

    def next(self) -> tuple[int, bool] | None:
        slot = self._next()
        if slot is None and self.first_out is None:
            self.first_out = self.run.now()
        return slot

    def end_of_steady_state(self) -> float:
        """When the first user ran out of work, or the measured duration ran out if earlier."""
        end = self.first_out if self.first_out is not None else self.run.now()
        if self.w.duration_s is not None and self.measure_start is not None:
            end = min(end, self.measure_start + self.w.duration_s)
        return end

    def _next(self) -> tuple[int, bool] | None:
        now = self.run.now()
        if now >= self.time_limit_s:
            return None
        warm = self.issued < self.w.warmup_requests or now < self.w.warmup_s
        if not warm:
            if self.measure_start is None:
                self.measure_start = now
            if self.w.requests is not None and self.measured >= self.w.requests:
                return None
            if self.w.duration_s is not None and now - self.measure_start >= self.w.duration_s:
                return None
            self.measured += 1
        self.issued += 1
        return self.issued - 1, warm


async def _closed(run: _Run, w: ClosedLoop, time_limit_s: float) -> float:
    """Run the users; return when the first of them ran out of work (see ``Recording``)."""
    gate = _ClosedGate(w, run, time_limit_s)

    async def user() -> None:
        while (nxt := gate.next()) is not None:
            await run.one(nxt[0], nxt[1], run.now())

    users = [asyncio.ensure_future(user()) for _ in range(w.concurrency)]
    await _gather_until(users, time_limit_s + run.timeout_s + _GRACE_S - run.now())
    return gate.end_of_steady_state()


async def _scheduled(run: _Run, w: OpenLoop | MMPP, time_limit_s: float) -> tuple[float, float]:
    schedule = w.schedule()
    n_warm = bisect.bisect_left(schedule, w.warmup_s)
    cap = w.max_in_flight
    slot_free = asyncio.Event()
    tasks: list[asyncio.Future[None]] = []
    end_of_schedule = schedule[-1] if schedule else 0.0
    stop_at = min(time_limit_s, end_of_schedule + run.timeout_s)
    loop = asyncio.get_running_loop()

    outstanding = 0  # dispatched and not finished; counted at dispatch, before the task runs

    def done(_: asyncio.Future[None]) -> None:
        nonlocal outstanding
        outstanding -= 1
        slot_free.set()

    # how the dispatcher waits for each send time: a kernel timer or a spin (see pacing.py)
    pacer = AsyncPacer(run.clock, run.t0, schedule_rate(schedule))
    try:
        for i, intended in enumerate(schedule):
            await pacer.wait_until(intended)
            while outstanding >= cap and run.now() < stop_at:
                slot_free.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(slot_free.wait(), max(0.0, stop_at - run.now()))
            if run.now() >= stop_at:
                now = run.now()
                run.rows.extend(Record(j, j < n_warm, schedule[j], now, now, _NOT_SENT)
                                for j in range(i, len(schedule)))
                break
            task = loop.create_task(run.one(i, i < n_warm, intended))
            outstanding += 1
            task.add_done_callback(done)
            tasks.append(task)
    finally:
        pacer.close()
    hard = stop_at + run.timeout_s + _GRACE_S
    await _gather_until(tasks, hard - run.now())
    measure_start = w.warmup_s
    return measure_start, max(run.now(), measure_start)


async def _gather_until(tasks: Sequence[asyncio.Future[Any]], timeout_s: float) -> None:
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, timeout_s))
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending)


class _Sampler:
    """Reads the run's counters for a progress callback every ``interval_s`` (never per
    request); the median comes from at most ``_P50_SAMPLE`` of each interval's new replies, so
    a tick costs the loop well under a millisecond at any request rate."""

    _P50_SAMPLE = 200

    def __init__(self, run: _Run, callback: ProgressCallback, interval_s: float) -> None:
        from .histogram import LatencyHistogram

        self.run = run
        self.callback = callback
        self.interval_s = interval_s
        self.seen = 0
        self.errors = 0
        self.latencies = LatencyHistogram()

    def snapshot(self, *, final: bool = False) -> Snapshot:
        rows = self.run.rows
        new = rows[self.seen:]
        self.seen = len(rows)
        self.errors += sum(1 for r in new if not r.reply.ok)
        step = max(1, len(new) // self._P50_SAMPLE)
        for r in new[::step]:
            if r.reply.ok:
                self.latencies.record(max(0.0, r.latency_s))
        p50 = self.latencies.quantile(0.5) if self.latencies.count else float("nan")
        return Snapshot(self.run.now(), self.seen + self.run.in_flight, self.seen,
                        self.errors, p50, final)

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.callback(self.snapshot())
            except Exception:  # a broken display must not break the measurement
                return


async def drive(target: Target, workload: AnyWorkload, payloads: Sequence[Payload], *,
                timeout_s: float, time_limit_s: float,
                clock: Callable[[], float] = time.perf_counter,
                progress: ProgressCallback | None = None,
                progress_interval_s: float = PROGRESS_INTERVAL_S) -> Recording:
    """Run ``workload`` against ``target`` inside the running event loop; ``progress`` is
    handed a ``progress.Snapshot`` every ``progress_interval_s`` and a final one at the end."""
    if not payloads:
        raise ValueError("at least one payload is needed")
    if timeout_s <= 0 or time_limit_s <= 0:
        raise ValueError("timeout_s and time_limit_s must be > 0")
    concurrency = workload.concurrency if isinstance(workload, ClosedLoop) else \
        workload.max_in_flight
    client = target.client(concurrency_hint=concurrency)
    started = time.time()
    run = _Run(client, payloads, timeout_s, clock)
    # A full garbage collection over the run's records stalls the loop for tens of
    # milliseconds, which would show up as schedule lag; nothing here makes cycles.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    window_completions: float | None = None
    sampler = None if progress is None else _Sampler(run, progress, progress_interval_s)
    ticking = None if sampler is None else asyncio.ensure_future(sampler.loop())
    try:
        if isinstance(workload, ClosedLoop):
            steady_end = await _closed(run, workload, time_limit_s)
        elif isinstance(workload, (OpenLoop, MMPP)):
            m0, m1 = await _scheduled(run, workload, time_limit_s)
        else:
            raise TypeError(f"unknown workload {workload!r}")
    finally:
        if ticking is not None:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking
        await client.aclose()
        if gc_was_enabled:
            gc.enable()
    if sampler is not None:
        with contextlib.suppress(Exception):
            sampler.callback(sampler.snapshot(final=True))
    wall = run.now()
    if isinstance(workload, ClosedLoop):
        m0, m1, window_completions = closed_window(run.rows, steady_end)
    else:
        measured = [r.done_s for r in run.rows if not r.warmup]
        if measured:
            m1 = max(measured)
    rows = sorted(run.rows, key=lambda r: r.index)
    return Recording(tuple(rows), started, m0, max(m1, m0), wall, run.max_in_flight,
                     not isinstance(workload, ClosedLoop), window_completions)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_sync(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code (a test body), in a fresh event loop
    (uvloop when installed); from a thread of its own when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coro_fn())
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["value"] = run_sync(coro_fn)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=worker, name="servebench-engine")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value
