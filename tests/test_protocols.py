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


def test_function_and_server_targets_and_their_clients() -> None:
    from pytest_servebench.backends.local.server import ServerTarget
    from pytest_servebench.functions.client import FunctionTarget, InvokeClient

    fn = FunctionTarget("http://127.0.0.1:9", "f")
    srv = ServerTarget("http://127.0.0.1:9/predict", name="ec2")
    for target in (fn, srv):
        assert isinstance(target, Target)

    async def make(t: Target) -> object:
        client = t.client(concurrency_hint=1)
        await client.aclose()
        return client

    made = asyncio.run(make(fn))
    assert isinstance(made, Client) and isinstance(made, InvokeClient)
    assert isinstance(asyncio.run(make(srv)), Client)


def test_process_sandboxes_and_launcher() -> None:
    import inspect

    from pytest_servebench.backends.local.functions import ProcessLauncher, ProcessSandbox
    from pytest_servebench.functions.sandbox import LaunchedSandbox, Launcher

    # Protocols with properties cannot be checked with isinstance on classes: compare members.
    for impl, proto in ((ProcessSandbox, LaunchedSandbox), (ProcessLauncher, Launcher)):
        wanted = {n for n in vars(proto) if not n.startswith("_")}
        assert wanted <= set(dir(impl)), f"{impl.__name__} lacks {wanted - set(dir(impl))}"
        for name in wanted:
            member = getattr(proto, name)
            if callable(member):
                assert inspect.iscoroutinefunction(member) == inspect.iscoroutinefunction(
                    getattr(impl, name)), name
