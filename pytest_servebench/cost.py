"""Cost models: measured durations and throughput turned into dollars. Pure arithmetic; each
platform's pricing rule is its profile's (``platforms``).

Functions are billed per call (duration rounded up to 1 ms, times memory, plus a request fee and
optionally API Gateway); servers and containers per hour, so their cost per request depends on
how many requests an hour they serve: at steady state, the measured throughput. A server is
also billed for the whole time it exists, launch to termination, whatever it serves
(``ServerBill``): a server target whose profile says when it was launched (``launched_unix``)
gets both, per million and its bill from launch to the end of the run priced (it runs on).

>>> book = load_price_book()
>>> round(function_usd_per_call(630, 1024, book) * 1e6, 2)   # the 000 study's Lambda, warm
10.7
>>> round(server_usd_per_million(0.085, 34), 2)               # ...and its c5.large at 34 IPS
0.69
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .platforms import FargateProfile, InstanceProfile, LambdaProfile, billed_ms, profile_of
from .pricebook import Arch, PriceBook, load_price_book

__all__ = ["CostEstimate", "Priced", "ServerBill", "billed_ms", "breakeven_calls_per_day",
           "function_usd_per_call", "load_price_book", "price_result", "server_run_usd",
           "server_usd_per_million"]

# EC2, Fargate and SageMaker bill by the second, with a minute's minimum.
MINIMUM_BILLED_S = 60.0


@dataclass(frozen=True, slots=True)
class ServerBill:
    """What one server cost: its hourly price for the whole time it existed, from its launch
    to ``ended_unix``: its termination (``terminated``), or, while it still runs, the end of
    the last run priced on it (the bill goes on until it is terminated).

    >>> bill = ServerBill("ec2:c5.large:m", "ec2", "c5.large", 0.085, 1000.0, 1125.0)
    >>> round(bill.usd, 6), bill.line()
    (0.002951, 'ec2:c5.large:m: c5.large at $0.085/h for 125 s (launch to termination) = $0.0030')
    """

    name: str
    platform: str
    basis: str
    usd_per_hour: float
    launched_unix: float
    ended_unix: float
    terminated: bool = True

    @property
    def billed_s(self) -> float:
        return max(MINIMUM_BILLED_S, self.ended_unix - self.launched_unix)

    @property
    def usd(self) -> float:
        return self.usd_per_hour * self.billed_s / 3600.0

    @property
    def until(self) -> str:
        """Where the billed time ends, in words."""
        return "launch to termination" if self.terminated else "launch to its last run"

    def line(self) -> str:
        return (f"{self.name}: {self.basis} at ${self.usd_per_hour:g}/h for "
                f"{self.billed_s:.0f} s ({self.until}) = ${self.usd:.4f}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "platform": self.platform, "basis": self.basis,
                "usd_per_hour": self.usd_per_hour, "launched_unix": self.launched_unix,
                "ended_unix": self.ended_unix, "terminated": self.terminated,
                "billed_s": self.billed_s, "usd": self.usd}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerBill:
        return cls(str(data["name"]), str(data["platform"]), str(data["basis"]),
                   float(data["usd_per_hour"]), float(data["launched_unix"]),
                   float(data["ended_unix"]), bool(data["terminated"]))


@dataclass(frozen=True)
class CostEstimate:
    """Dollars per request for one result, and how they were reached; for a server also its
    hourly price and, when its launch is known, its bill so far (``server_bill``)."""

    usd_per_request: float
    platform: str
    basis: str
    price_book_as_of: str
    usd_per_hour: float | None = None
    server_bill: ServerBill | None = None

    @property
    def usd_per_million(self) -> float:
        return self.usd_per_request * 1e6

    @property
    def usd_per_1000(self) -> float:
        return self.usd_per_request * 1e3

    def to_dict(self) -> dict[str, Any]:
        out = {"platform": self.platform, "usd_per_request": self.usd_per_request,
               "usd_per_1000": self.usd_per_1000, "usd_per_million": self.usd_per_million,
               "basis": self.basis, "price_book_as_of": self.price_book_as_of}
        if self.usd_per_hour is not None:
            out["usd_per_hour"] = self.usd_per_hour
        if self.server_bill is not None:
            out["server_bill"] = self.server_bill.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostEstimate:
        """Read back what ``to_dict`` wrote (the per-1000 and per-million prices and the
        bill's dollars follow); what older versions wrote has no hourly price or bill."""
        hourly, bill = data.get("usd_per_hour"), data.get("server_bill")
        return cls(float(data["usd_per_request"]), str(data["platform"]), str(data["basis"]),
                   str(data["price_book_as_of"]),
                   usd_per_hour=None if hourly is None else float(hourly),
                   server_bill=None if bill is None else ServerBill.from_dict(bill))


class Priced(Protocol):
    """What a result is priced from (a ``result.Result``): its target and the target's
    profile, when it ran, its measured throughput and the durations a function billed. Cost
    knows results only through this."""

    @property
    def target(self) -> str: ...

    @property
    def target_profile(self) -> Mapping[str, Any]: ...

    @property
    def started_unix_s(self) -> float: ...

    @property
    def duration_s(self) -> float: ...

    @property
    def throughput(self) -> float: ...

    @property
    def billed_durations_s(self) -> Sequence[float]: ...


def function_usd_per_call(duration_ms: float, memory_mb: int, book: PriceBook, *,
                          arch: Arch = "x86_64", api_gateway: str | None = None,
                          ephemeral_mb: int = 512) -> float:
    """One invocation of a function: billed GB-seconds, request fee, extra ephemeral storage
    and, when the call comes through it, API Gateway (``"rest"`` or ``"http"``); Lambda's
    rule (``platforms.LambdaProfile``)."""
    return LambdaProfile(memory_mb, arch, ephemeral_mb, api_gateway).usd_per_call(duration_ms,
                                                                                  book)


def server_usd_per_million(usd_per_hour: float, throughput_per_s: float) -> float:
    """Dollars per million requests for an always-on server serving ``throughput_per_s``."""
    if throughput_per_s <= 0:
        raise ValueError("throughput must be > 0 to price a server per request")
    return usd_per_hour / 3600 / throughput_per_s * 1e6


def server_run_usd(usd_per_hour: float, wall_s: float) -> float:
    """What a server costs for the wall time of a run (the 004 study's per-experiment cost)."""
    return usd_per_hour * wall_s / 3600


def breakeven_calls_per_day(server_usd_per_hour: float, function_usd_per_call: float) -> float:
    """Calls a day at which an always-on server and a function cost the same; above it the
    server is cheaper (the 001 study's 1,800 calls a day)."""
    if function_usd_per_call <= 0:
        raise ValueError("a function call must cost something")
    return server_usd_per_hour * 24 / function_usd_per_call


def server_usd_per_hour(profile: Mapping[str, Any], book: PriceBook) -> tuple[float, str]:
    """What the server a target profile describes costs an hour, and what was priced."""
    platform = profile_of(profile, book)
    if not isinstance(platform, InstanceProfile | FargateProfile):
        raise ValueError(f"not a server platform: {profile.get('platform')!r}")
    return platform.usd_per_hour(book), platform.basis()


def price_result(result: Priced, book: PriceBook) -> CostEstimate | None:
    """Price a result from its target profile with its platform's rule; None when the platform
    is not known, or when a function did not report billed durations (nothing is guessed). A
    profile its platform does not offer (an ``ml.`` type on EC2) is a ``PlatformError``."""
    profile = profile_of(result.target_profile, book)
    if isinstance(profile, LambdaProfile):
        billed = list(result.billed_durations_s)
        if not billed:
            return None
        per_call = [profile.usd_per_call(b * 1000, book) for b in billed]
        usd = math.fsum(per_call) / len(per_call)
        basis = f"mean of {len(billed)} billed durations at {profile.basis()}"
        return CostEstimate(usd, "lambda", basis, book.as_of)
    if isinstance(profile, InstanceProfile | FargateProfile):
        if not result.throughput > 0:
            return None
        hourly = profile.usd_per_hour(book)
        usd = server_usd_per_million(hourly, result.throughput) / 1e6
        basis = (f"{profile.basis()} at ${hourly:g}/h serving the measured "
                 f"{result.throughput:.4g} req/s")
        launched = result.target_profile.get("launched_unix")
        bill = None
        if isinstance(launched, int | float) and not isinstance(launched, bool):
            bill = ServerBill(result.target, profile.platform, profile.basis(), hourly,
                              float(launched), result.started_unix_s + result.duration_s,
                              terminated=False)
        return CostEstimate(usd, profile.platform, basis, book.as_of, usd_per_hour=hourly,
                            server_bill=bill)
    return None
