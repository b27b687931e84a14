"""Cost models: measured durations and throughput turned into dollars. Pure arithmetic.

Functions are billed per call (duration rounded up to 1 ms, times memory, plus a request fee and
optionally API Gateway); servers and containers per hour, so their cost per request depends on
how many requests an hour they serve: at steady state, the measured throughput.

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

from .pricebook import Arch, PriceBook, load_price_book

__all__ = ["CostEstimate", "Priced", "billed_ms", "breakeven_calls_per_day",
           "function_usd_per_call", "load_price_book", "price_result", "server_run_usd",
           "server_usd_per_million"]


@dataclass(frozen=True)
class CostEstimate:
    """Dollars per request for one result, and how they were reached."""

    usd_per_request: float
    platform: str
    basis: str
    price_book_as_of: str

    @property
    def usd_per_million(self) -> float:
        return self.usd_per_request * 1e6

    @property
    def usd_per_1000(self) -> float:
        return self.usd_per_request * 1e3

    def to_dict(self) -> dict[str, Any]:
        return {"platform": self.platform, "usd_per_request": self.usd_per_request,
                "usd_per_1000": self.usd_per_1000, "usd_per_million": self.usd_per_million,
                "basis": self.basis, "price_book_as_of": self.price_book_as_of}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostEstimate:
        """Read back what ``to_dict`` wrote (the per-1000 and per-million prices follow)."""
        return cls(float(data["usd_per_request"]), str(data["platform"]), str(data["basis"]),
                   str(data["price_book_as_of"]))


class Priced(Protocol):
    """What a result is priced from (a ``result.Result``): its target's profile, its measured
    throughput and the durations a function billed. Cost knows results only through this."""

    @property
    def target_profile(self) -> Mapping[str, Any]: ...

    @property
    def throughput(self) -> float: ...

    @property
    def billed_durations_s(self) -> Sequence[float]: ...


def billed_ms(duration_ms: float) -> int:
    """Lambda bills whole milliseconds, rounded up (1.0001 ms is billed as 2 ms)."""
    if duration_ms < 0:
        raise ValueError("a duration cannot be negative")
    # Guard float noise such as 630.0000000001 coming from seconds * 1000.
    return max(1, math.ceil(round(duration_ms, 6)))


def function_usd_per_call(duration_ms: float, memory_mb: int, book: PriceBook, *,
                          arch: Arch = "x86_64", api_gateway: str | None = None,
                          ephemeral_mb: int = 512) -> float:
    """One invocation of a function: billed GB-seconds, request fee, extra ephemeral storage
    and, when the call comes through it, API Gateway (``"rest"`` or ``"http"``)."""
    if not 128 <= memory_mb <= 10240:
        raise ValueError(f"Lambda memory is 128..10240 MB, not {memory_mb}")
    seconds = billed_ms(duration_ms) / 1000
    gb = memory_mb / 1024
    usd = gb * seconds * book.lambda_usd_per_gb_s(arch) + book.lambda_usd_per_request()
    storage_price, free_mb = book.lambda_ephemeral_usd_per_gb_s()
    if ephemeral_mb > free_mb:
        usd += (ephemeral_mb - free_mb) / 1024 * seconds * storage_price
    if api_gateway:
        usd += book.api_gateway_usd_per_request(api_gateway)
    return usd


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
    platform = profile.get("platform")
    if platform in ("ec2", "sagemaker"):
        name = str(profile["instance_type"])
        return book.instance(name).usd_per_hour, name
    if platform == "fargate":
        vcpu, mem = float(profile["vcpu"]), float(profile["memory_gb"])
        arch: Arch = profile.get("arch", "x86_64")
        return book.fargate_usd_per_hour(vcpu, mem, arch), f"{vcpu:g} vCPU / {mem:g} GB {arch}"
    raise ValueError(f"not a server platform: {platform!r}")


def price_result(result: Priced, book: PriceBook) -> CostEstimate | None:
    """Price a result from its target profile; None when the platform is not known, or when a
    function did not report billed durations (nothing is guessed)."""
    profile = result.target_profile
    platform = profile.get("platform")
    if platform == "lambda":
        billed = list(result.billed_durations_s)
        if not billed:
            return None
        memory_mb = int(profile["memory_mb"])
        arch: Arch = profile.get("arch", "x86_64")
        gateway = profile.get("api_gateway")
        per_call = [function_usd_per_call(b * 1000, memory_mb, book, arch=arch,
                                          api_gateway=gateway,
                                          ephemeral_mb=int(profile.get("ephemeral_mb", 512)))
                    for b in billed]
        usd = math.fsum(per_call) / len(per_call)
        basis = (f"mean of {len(billed)} billed durations at {memory_mb} MB {arch}"
                 + (f" + API Gateway {gateway}" if gateway else ""))
        return CostEstimate(usd, "lambda", basis, book.as_of)
    if platform in ("ec2", "sagemaker", "fargate"):
        if not result.throughput > 0:
            return None
        hourly, what = server_usd_per_hour(profile, book)
        usd = server_usd_per_million(hourly, result.throughput) / 1e6
        basis = f"{what} at ${hourly:g}/h serving the measured {result.throughput:.4g} req/s"
        return CostEstimate(usd, str(platform), basis, book.as_of)
    return None
