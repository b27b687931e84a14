"""What the aws backend's servers (EC2 instances, Fargate tasks, SageMaker endpoints) share:
how a provisioned server is reached, how long it is waited for, and what it cost.

**The address seam** (``Reach``): a server provisioned through the control plane is reached at
the address that plane reports (an instance's or a task's public IP) from the caller's own
address, the only one its security group admits. ``PublicAddress`` is that, on AWS.
``LoopbackStandIn`` is the one other implementation: moto's instances have no reachable address,
so the offline harness serves each provisioned server with a local ``servebench serve`` on
loopback (shaped to the server's vCPU and memory where cgroups allow) and says so in the
target's profile. It is chosen with ``SERVEBENCH_AWS_SERVERS=loopback`` and refused when the
control plane is AWS itself: against a real account, measurements come from the real server.

**Cost**: a server is billed for the whole time it existed, launch to termination (``ServerBill``,
at the price book's hourly rate); per million at the measured throughput is ``cost``'s, from the
target's profile. The budget guard admits a server on an assumed lifetime before launching it
and charges its bill when it is gone.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ...cost import ServerBill
from ...waiting import wait_for

if TYPE_CHECKING:
    from ...platforms import Shape

# EC2's `servebench serve`, and the image's `serve` (SageMaker's container contract: Fargate
# tasks run it too).
SERVING_PORT = 8080
READY_TIMEOUT_S = 900.0  # an instance boots, installs Python and the package, loads the model
READY_INTERVAL_S = 5.0
# What the budget guard assumes a server lives before admitting it (its bill replaces the guess
# when it is gone): a suite module's servers live minutes, not hours.
ASSUMED_LIFETIME_S = 1800.0
STAND_IN_ENV = "SERVEBENCH_AWS_SERVERS"
CHECKIP_URL = "https://checkip.amazonaws.com"


@dataclass(frozen=True, slots=True)
class Provisioned:
    """One server as the control plane made it: ``platform`` (ec2, fargate, sagemaker), the
    ``ident`` its service knows it by (an instance id, a task ARN, an endpoint name), the
    ``target`` it serves and the ``port`` it serves on, its ``shape`` and its price."""

    platform: str
    ident: str
    target: str
    port: int
    shape: Shape
    usd_per_hour: float
    basis: str
    launched_unix: float
    cluster: str = ""  # Fargate: the task's cluster
    environment: dict[str, str] = field(default_factory=dict)  # what its server is started with


class Reach(Protocol):
    """How the caller reaches a provisioned server (the seam the offline tests point at
    loopback)."""

    @property
    def note(self) -> str | None:
        """What a target's profile says about its address (None: the server's own)."""
        ...

    def caller_cidr(self) -> str:
        """The caller's address as the security group admits it (``a.b.c.d/32``)."""
        ...

    def base_url(self, server: Provisioned, address: Callable[[], str]) -> str:
        """``http://host:port`` of ``server``; ``address()`` asks the control plane for its
        public address (called only where that is the address used)."""
        ...

    def release(self, server: Provisioned) -> None:
        """The server is gone: drop what reaching it needed."""
        ...


class PublicAddress:
    """The server's public address, from the caller's own (asked of ``checkip_url`` once)."""

    note = None

    def __init__(self, *, checkip_url: str = CHECKIP_URL) -> None:
        self.checkip_url = checkip_url
        self._cidr: str | None = None

    def caller_cidr(self) -> str:
        if self._cidr is None:
            import ipaddress

            with urllib.request.urlopen(self.checkip_url, timeout=10) as resp:
                ip = ipaddress.ip_address(resp.read().decode().strip())
            self._cidr = f"{ip}/{32 if ip.version == 4 else 128}"
        return self._cidr

    def base_url(self, server: Provisioned, address: Callable[[], str]) -> str:
        return f"http://{address()}:{server.port}"

    def release(self, server: Provisioned) -> None:
        return None


class LoopbackStandIn:
    """Each provisioned server served by a local ``servebench serve`` on loopback, shaped like
    it where cgroups allow (moto's instances and tasks run nothing). Measurements through it
    are this machine's, and the target's profile says so."""

    note = ("served by a local `servebench serve` on loopback standing in for the provisioned "
            "server (the control plane is not AWS: its servers run nothing)")

    def __init__(self) -> None:
        from ..local.processes import new_owner
        from ..local.shaping import Shaper

        self._owner, self._shaper = new_owner(), Shaper()
        self._running: dict[str, Any] = {}
        self._lock = threading.Lock()
        # What the control plane gave as each server's address (moto gives instances a
        # public IP, and a task's interface none: then why not), for the tests to check.
        self.addresses: dict[str, str] = {}

    def caller_cidr(self) -> str:
        return "127.0.0.1/32"

    def base_url(self, server: Provisioned, address: Callable[[], str]) -> str:
        from ..local.server import ServerProcess

        try:  # asked as on AWS, so the control-plane path up to the address is the same
            self.addresses[server.ident] = address()
        except LookupError as exc:
            self.addresses[server.ident] = f"unresolved: {exc}"
        with self._lock:
            running = self._running.get(server.ident)
            if running is None:
                running = ServerProcess(server.target, owner=self._owner, shape=server.shape,
                                        shaper=self._shaper, environment=server.environment,
                                        label=f"aws-{server.platform}-{server.target}")
                self._running[server.ident] = running
        return f"http://127.0.0.1:{running.port}"

    def release(self, server: Provisioned) -> None:
        with self._lock:
            running = self._running.pop(server.ident, None)
        if running is not None:
            running.stop()

    def close(self) -> None:
        with self._lock:
            running, self._running = list(self._running.values()), {}
        for r in running:
            r.stop()


if TYPE_CHECKING:
    def _both_reach(a: PublicAddress, b: LoopbackStandIn) -> tuple[Reach, Reach]:
        return a, b  # mypy checks both against the seam


def reach_from_environment(*, control_plane_is_aws: bool) -> Reach:
    """``SERVEBENCH_AWS_SERVERS=loopback`` chooses the stand-in (refused against AWS); unset
    or ``public``, the servers' own addresses."""
    how = os.environ.get(STAND_IN_ENV, "public").strip().lower()
    if how == "public":
        return PublicAddress()
    if how == "loopback":
        if control_plane_is_aws:
            raise ValueError(f"{STAND_IN_ENV}=loopback serves provisioned servers on this "
                             "machine, for an offline control plane (moto); the control "
                             "plane here is AWS, whose servers are measured where they run")
        return LoopbackStandIn()
    raise ValueError(f"{STAND_IN_ENV} is 'public' or 'loopback', not {how!r}")


def health_ok(base_url: str) -> bool:
    """``GET /health`` answers 200 (a 503 while the model loads is "not yet")."""
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=5.0) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError:
        return False


def wait_healthy(base_url: str, *, what: str, timeout_s: float = READY_TIMEOUT_S,
                 interval_s: float = READY_INTERVAL_S, logs: Callable[[], str] | None = None,
                 dead: Callable[[], str | None] | None = None) -> float:
    """Poll ``base_url``'s ``/health`` until it answers 200; seconds waited. Refused and reset
    connections and timeouts are retried; on timeout the error carries ``logs()`` (an
    instance's console output)."""
    return wait_for(lambda: health_ok(base_url), timeout_s=timeout_s, what=what,
                    interval_s=interval_s, retry_on=(OSError, urllib.error.URLError),
                    dead=dead, logs=logs)


__all__ = [
    "ASSUMED_LIFETIME_S",
    "SERVING_PORT",
    "LoopbackStandIn",
    "Provisioned",
    "PublicAddress",
    "Reach",
    "ServerBill",
    "health_ok",
    "reach_from_environment",
    "wait_healthy",
]
