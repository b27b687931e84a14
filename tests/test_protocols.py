"""Every implementation of a seam satisfies its Protocol."""

from __future__ import annotations

import asyncio

from pytest_servebench.backends.http import HttpTarget
from pytest_servebench.http_client import HttpClient
from pytest_servebench.target import Client, Target
from pytest_servebench.workloads import MMPP, ClosedLoop, OpenLoop, Workload


def test_http_target_and_client() -> None:
    target = HttpTarget("http://127.0.0.1:9/")
    assert isinstance(target, Target)

    async def make() -> object:
        client = target.client(concurrency_hint=1)
        await client.aclose()
        return client

    assert isinstance(asyncio.run(make()), Client)
    assert isinstance(asyncio.run(make()), HttpClient)


def test_workloads() -> None:
    for w in (ClosedLoop(concurrency=1, requests=1), OpenLoop(rate=1, duration=1),
              MMPP(rates=(1, 2), mean_dwell_s=(1, 1), duration=1)):
        assert isinstance(w, Workload)
        assert w.describe()["kind"] == w.kind
