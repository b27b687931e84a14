"""Workloads: how requests are issued, independent of where they go.

``ClosedLoop`` models a fixed population of users that wait for each answer (the studies'
concurrency sweeps). ``OpenLoop`` and ``MMPP`` model arrivals that do not wait for the system
(a schedule of intended send times), which is what real traffic does and what exposes queueing.

>>> OpenLoop(rate=100, duration=2, arrival="constant").schedule()[:3]
[0.0, 0.01, 0.02]
>>> a, b = OpenLoop(rate=50, duration=4, seed=1), OpenLoop(rate=50, duration=4, seed=1)
>>> a.schedule() == b.schedule()
True
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(us|µs|ms|s|sec|m|min|h)?\s*$")
_UNIT_S = {None: 1.0, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0,
           "min": 60.0, "h": 3600.0}


def parse_duration_s(value: float | int | str) -> float:
    """Seconds from a number of seconds or a string such as ``"500ms"``, ``"2s"``, ``"1m"``."""
    if isinstance(value, bool):
        raise TypeError("a duration cannot be a bool")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"cannot read {value!r} as a duration (try '500ms', '2s', '1m')")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be finite and >= 0, got {value!r}")
    return seconds


@runtime_checkable
class Workload(Protocol):
    """What the load engine needs from a workload."""

    kind: str

    @property
    def warmup_s(self) -> float: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class ClosedLoop:
    """``concurrency`` clients; each sends its next request when the previous one completes.

    Stops after ``requests`` measured requests or ``duration`` seconds, whichever is given (both
    may be given: the first reached ends the run). ``warmup_requests`` / ``warmup`` seconds run
    first and are recorded but kept out of the statistics.
    """

    concurrency: int
    requests: int | None = None
    duration: float | str | None = None
    warmup_requests: int = 0
    warmup: float | str = 0.0
    kind: str = field(default="closed", init=False)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("ClosedLoop needs concurrency >= 1")
        if self.requests is None and self.duration is None:
            raise ValueError(
                "ClosedLoop needs requests=N or duration=SECONDS (every run is bounded)")
        if self.requests is not None and self.requests < 1:
            raise ValueError("ClosedLoop requests must be >= 1")
        if self.duration is not None:
            object.__setattr__(self, "duration", parse_duration_s(self.duration))
        if self.warmup_requests < 0:
            raise ValueError("warmup_requests must be >= 0")
        object.__setattr__(self, "warmup", parse_duration_s(self.warmup))

    @property
    def duration_s(self) -> float | None:
        return None if self.duration is None else float(self.duration)

    @property
    def warmup_s(self) -> float:
        return float(self.warmup)

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        bound = f"{self.requests} req" if self.requests is not None else f"{self.duration_s:g}s"
        return f"closed(c={self.concurrency}, {bound})"


Arrival = Literal["poisson", "constant"]


def _arrivals(rng: random.Random, rate: float, start: float, end: float, arrival: Arrival,
              out: list[float]) -> None:
    if rate <= 0:
        return
    if arrival == "constant":
        n0 = math.ceil(start * rate - 1e-9)
        k = n0
        while True:
            t = k / rate
            if t >= end - 1e-12:
                break
            out.append(round(t, 12))
            k += 1
        return
    t = start
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            break
        out.append(t)


@dataclass(frozen=True, kw_only=True)
class OpenLoop:
    """Arrivals at ``rate`` per second for ``duration`` seconds, on a schedule that does not
    depend on responses. ``arrival="poisson"`` draws exponential gaps from ``seed``;
    ``"constant"`` spaces requests evenly. Latency is measured from each request's intended
    send time, so a stalled server shows in the tail as its users would see it.

    ``max_in_flight`` bounds outstanding requests (client memory and sockets); a request that
    finds it full waits and its wait counts in its latency and schedule lag.
    """

    rate: float
    duration: float | str
    arrival: Arrival = "poisson"
    seed: int = 0
    warmup: float | str = 0.0
    max_in_flight: int = 1024
    kind: str = field(default="open", init=False)

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError("OpenLoop needs rate > 0 (requests per second)")
        if self.arrival not in ("poisson", "constant"):
            raise ValueError(f"arrival must be 'poisson' or 'constant', not {self.arrival!r}")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        object.__setattr__(self, "duration", parse_duration_s(self.duration))
        object.__setattr__(self, "warmup", parse_duration_s(self.warmup))
        if not float(self.duration) > 0:
            raise ValueError("OpenLoop needs duration > 0")

    @property
    def duration_s(self) -> float:
        return float(self.duration)

    @property
    def warmup_s(self) -> float:
        return float(self.warmup)

    def schedule(self) -> list[float]:
        """Intended send times in seconds from the start, warm-up included."""
        out: list[float] = []
        _arrivals(random.Random(self.seed), self.rate, 0.0, self.warmup_s + self.duration_s,
                  self.arrival, out)
        return out

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"open({self.rate:g}/s {self.arrival}, {self.duration_s:g}s)"


@dataclass(frozen=True, kw_only=True)
class MMPP:
    """A Markov-modulated Poisson process: a hidden state switches after exponential dwell times
    (mean ``mean_dwell_s[i]``); while in state ``i`` requests arrive as Poisson at ``rates[i]``.
    From a state the next one is drawn from ``transitions[i]`` (default: any other state, evenly).

    >>> w = MMPP(rates=(10, 40), mean_dwell_s=(30, 10), duration="1m", seed=3)
    >>> max(w.rates), w.duration_s, w.mean_rate
    (40.0, 60.0, 17.5)
    """

    rates: Sequence[float]
    mean_dwell_s: Sequence[float]
    duration: float | str
    transitions: Sequence[Sequence[float]] | None = None
    initial_state: int = 0
    seed: int = 0
    warmup: float | str = 0.0
    max_in_flight: int = 1024
    kind: str = field(default="mmpp", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", tuple(float(r) for r in self.rates))
        object.__setattr__(self, "mean_dwell_s", tuple(float(d) for d in self.mean_dwell_s))
        k = len(self.rates)
        if k < 1 or len(self.mean_dwell_s) != k:
            raise ValueError("MMPP needs one mean dwell time per rate")
        if any(r < 0 for r in self.rates) or not any(r > 0 for r in self.rates):
            raise ValueError("MMPP rates must be >= 0 and not all zero")
        if any(d <= 0 for d in self.mean_dwell_s):
            raise ValueError("MMPP dwell times must be > 0")
        if not 0 <= self.initial_state < k:
            raise ValueError("initial_state out of range")
        if self.transitions is not None:
            rows = tuple(tuple(float(p) for p in row) for row in self.transitions)
            if len(rows) != k or any(len(r) != k for r in rows):
                raise ValueError(f"transitions must be a {k}x{k} matrix")
            for i, row in enumerate(rows):
                if row[i] != 0 or abs(sum(row) - 1) > 1e-9 or any(p < 0 for p in row):
                    raise ValueError("each transitions row must sum to 1 with a zero diagonal")
            object.__setattr__(self, "transitions", rows)
        object.__setattr__(self, "duration", parse_duration_s(self.duration))
        object.__setattr__(self, "warmup", parse_duration_s(self.warmup))
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")

    @property
    def duration_s(self) -> float:
        return float(self.duration)

    @property
    def warmup_s(self) -> float:
        return float(self.warmup)

    @property
    def mean_rate(self) -> float:
        """Long-run arrival rate (uniform jumps: state shares proportional to dwell times)."""
        if self.transitions is None:
            total = sum(self.mean_dwell_s)
            return sum(r * d for r, d in zip(self.rates, self.mean_dwell_s, strict=True)) / total
        raise NotImplementedError("mean_rate is only derived for the default transitions")

    def states(self) -> list[tuple[float, float, int]]:
        """(start, end, state) segments over warm-up plus duration."""
        rng = random.Random(self.seed)
        end = self.warmup_s + self.duration_s
        t, state = 0.0, self.initial_state
        out: list[tuple[float, float, int]] = []
        k = len(self.rates)
        while t < end:
            dwell = rng.expovariate(1 / self.mean_dwell_s[state])
            out.append((t, min(t + dwell, end), state))
            t += dwell
            if k > 1:
                if self.transitions is None:
                    nxt = rng.randrange(k - 1)
                    state = nxt if nxt < state else nxt + 1
                else:
                    state = rng.choices(range(k), weights=self.transitions[state])[0]
        return out

    def schedule(self) -> list[float]:
        # A separate stream for arrivals keeps the state path fixed when rates change.
        arrivals = random.Random(self.seed * 7919 + 1)
        out: list[float] = []
        for start, end, state in self.states():
            _arrivals(arrivals, self.rates[state], start, end, "poisson", out)
        return out

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["rates"] = list(self.rates)
        d["mean_dwell_s"] = list(self.mean_dwell_s)
        return d

    def __str__(self) -> str:
        rates = "/".join(f"{r:g}" for r in self.rates)
        return f"mmpp({rates}/s, {self.duration_s:g}s)"


ScheduledWorkload = OpenLoop | MMPP
AnyWorkload = ClosedLoop | OpenLoop | MMPP
