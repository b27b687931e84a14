"""Per-request records: what the load engine writes for every request of a run, before any
statistics (``result.summarize`` turns a ``Recording`` into a ``Result``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .target import Reply


@dataclass(frozen=True, slots=True)
class Record:
    """One request. Times are seconds from the start of the run."""

    index: int
    warmup: bool
    intended_s: float
    sent_s: float
    done_s: float
    reply: Reply

    @property
    def latency_s(self) -> float:
        """Client-observed latency, from the intended send time."""
        return self.done_s - self.intended_s

    @property
    def lag_s(self) -> float:
        """How late the request left compared with its schedule."""
        return self.sent_s - self.intended_s


@dataclass(frozen=True, slots=True)
class Recording:
    """Raw output of one run, before statistics.

    Throughput is ``window_completions / (measure_end_s - measure_start_s)`` where
    ``window_completions`` is set, else ok measured requests over that window.

    Scheduled workloads (open loop, MMPP): the window runs from the end of the warm-up to the
    last measured completion; ``window_completions`` is None.

    Closed loops: the window is the steady state, in which every user is busy with a measured
    request. It starts when the last warm-up request completes (at the run's start without a
    warm-up) and ends when the first user runs out of work (the request count is used up), or
    at ``measure start + duration`` for a duration-bounded loop, or at the time limit; whichever
    comes first. A window taken from the first measured send to the last completion would count
    the tail of the warm-up and the drain, where fewer than ``concurrency`` requests are out,
    and read low: by (c-1)/(N+c-1) against a saturated server and 10-33% for N/c near 6.
    ``window_completions`` counts the ok measured requests that complete inside the window;
    one that straddles an edge (sent before the start, or done after the end) counts for the
    fraction of its own latency that lies inside. Counting whole completions would make the
    result depend on where the edges fall among replies that arrive together: the window
    opens on the last reply of such a group and closes on the first, so whole counts would
    miss up to c-1 of them (a 19% error at c=4, N=16 against a 4-slot server). With the
    fractional count each user adds (window length) / (its cycle time) whatever the phase,
    give or take the share of its turnaround between two requests (credited nothing) that an
    edge happens to cut: exact when that turnaround is 0.

    When no ok measured request completes inside the window (fewer requests than users, nothing
    measured after the warm-up, every reply in it an error), it falls back to [first measured
    send, last measured completion] with every ok measured request counted whole.
    """

    records: tuple[Record, ...]
    started_unix_s: float
    measure_start_s: float
    measure_end_s: float
    wall_s: float
    max_in_flight: int
    scheduled: bool
    window_completions: float | None = None


@runtime_checkable
class CompletesRecordings(Protocol):
    """A target that can fill in, after a run, what its replies lacked (a function whose log
    tail was cut reads its REPORT lines from CloudWatch Logs); called before statistics."""

    def complete(self, recording: Recording) -> Recording: ...


def closed_window(rows: Sequence[Record], end: float) -> tuple[float, float, float]:
    """The closed loop's steady-state window and the ok completions in it (see ``Recording``):
    the rule the in-process engine and the Locust driver both measure by."""
    start = max((r.done_s for r in rows if r.warmup), default=0.0)
    ok = [r for r in rows if not r.warmup and r.reply.ok]
    if any(start < r.done_s <= end for r in ok):
        completions = 0.0
        for r in ok:
            took = r.done_s - r.sent_s
            if took <= 0:  # no length to share out: whole, where it completed
                completions += start < r.done_s <= end
            else:
                completions += max(0.0, min(r.done_s, end) - max(r.sent_s, start)) / took
        return start, end, completions
    measured = [r for r in rows if not r.warmup]
    if not measured:
        return start, start, 0.0
    first = min(r.sent_s for r in measured)
    return first, max(first, max(r.done_s for r in measured)), float(len(ok))
