"""Every implementation of a seam satisfies its Protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_servebench.backends.http import HttpTarget
from pytest_servebench.http_client import HttpClient
from pytest_servebench.target import Client, Target
from pytest_servebench.workloads import MMPP, ClosedLoop, OpenLoop, Workload

from .backends.aws.conftest import aws_env, moto_server  # noqa: F401 - fixtures used below


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


def test_fake_container_and_process_launchers_fit_the_launcher_protocols() -> None:
    from pytest_servebench.backends.docker.containers import ContainerLauncher, ContainerSandbox
    from pytest_servebench.functions.fake import FakeLauncher, FakeSandbox
    from pytest_servebench.functions.sandbox import LaunchedSandbox, Launcher

    for impl, proto in ((FakeSandbox, LaunchedSandbox), (FakeLauncher, Launcher),
                        (ContainerSandbox, LaunchedSandbox), (ContainerLauncher, Launcher)):
        assert not _misfits(impl, proto), f"{impl.__name__}: {_misfits(impl, proto)}"


# -- backends ----------------------------------------------------------------------------------
def _misfits(impl: type, proto: type) -> list[str]:
    """How ``impl``'s methods fail to accept every call ``proto`` allows (a name missing, a
    parameter it lacks or makes required, an async method that is not, or the reverse)."""
    import inspect

    problems = []
    for name, member in vars(proto).items():
        if name.startswith("_") and name not in ("__enter__", "__exit__"):
            continue
        if not hasattr(impl, name):
            problems.append(f"no {name}")
            continue
        if isinstance(member, property) or not callable(member):
            continue
        got = getattr(impl, name)
        if inspect.iscoroutinefunction(member) != inspect.iscoroutinefunction(got):
            problems.append(f"{name}: async in one and not the other")
        want_sig, got_sig = inspect.signature(member), inspect.signature(got)
        has_kwargs = any(p.kind is p.VAR_KEYWORD for p in got_sig.parameters.values())
        for p in list(want_sig.parameters.values())[1:]:
            q = got_sig.parameters.get(p.name)
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                if not any(r.kind is p.kind for r in got_sig.parameters.values()):
                    problems.append(f"{name}: no {p}")
            elif q is None:
                if not (has_kwargs and p.kind is p.KEYWORD_ONLY):
                    problems.append(f"{name}: no parameter {p.name}")
            elif q.kind != p.kind:
                problems.append(f"{name}: {p.name} is {q.kind.description}, not "
                                f"{p.kind.description}")
            elif p.default is not p.empty and q.default is q.empty:
                problems.append(f"{name}: {p.name} must be optional")
        wanted = set(want_sig.parameters)
        for q in got_sig.parameters.values():
            if (q.name not in wanted and q.default is q.empty
                    and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)):
                problems.append(f"{name}: extra required parameter {q.name}")
    return problems


@pytest.fixture(params=["local", "docker", "aws"])
def any_backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each backend, constructed as the plugin constructs it (docker where an engine answers,
    aws against moto's server)."""
    if request.param == "local":
        from pytest_servebench.backends.local import LocalBackend

        backend: Any = LocalBackend()
    elif request.param == "docker":
        pytest.importorskip("testcontainers", reason="the container backend needs [docker]")
        request.getfixturevalue("docker_engine")
        from pytest_servebench.backends.docker import DockerBackend

        backend = DockerBackend()
    else:
        pytest.importorskip("boto3", reason="the aws backend needs [aws]")
        request.getfixturevalue("aws_env")
        from pytest_servebench.backends.aws import AwsBackend

        backend = AwsBackend()
    try:
        yield backend
    finally:
        backend.close()


def test_every_backend_satisfies_the_backend_protocol(any_backend: Any) -> None:
    from pytest_servebench.backends.base import Backend, Capabilities
    from pytest_servebench.platforms import PLATFORMS

    assert not _misfits(type(any_backend), Backend), _misfits(type(any_backend), Backend)
    assert isinstance(any_backend, Backend)
    assert any_backend.name in ("local", "docker", "aws")
    can = any_backend.capabilities()
    assert isinstance(can, Capabilities) and "lambda" in can.platforms
    assert set(can.platforms) <= set(PLATFORMS) and can.limits
    with any_backend as entered:
        assert entered is any_backend
    any_backend.close()  # twice: a no-op


def test_the_protocol_check_catches_a_backend_that_does_not_fit() -> None:
    from pytest_servebench.backends.base import Backend

    class Partial:
        name = "partial"

        def capabilities(self) -> None: ...

        def function(self, target: str, *, memory_mb: int) -> None: ...

        def force_cold(self, function: Any, now: bool) -> None: ...

        def server(self, target: str = "m", **_: Any) -> None: ...

        async def close(self) -> None: ...

    problems = _misfits(Partial, Backend)
    assert "function: target must be optional" in problems
    assert "function: no parameter reserved_concurrency" in problems
    assert "force_cold: extra required parameter now" in problems
    assert "close: async in one and not the other" in problems
    assert "no stop_server" in problems and "no __enter__" in problems
    assert not any(p.startswith("server") for p in problems)  # **kwargs takes the options


def test_local_and_docker_are_two_constructions_of_one_platform_backend() -> None:
    from pytest_servebench.backends.docker import DockerBackend
    from pytest_servebench.backends.local import LocalBackend
    from pytest_servebench.backends.local.backend import PlatformBackend

    assert not issubclass(DockerBackend, LocalBackend)
    for construction in (LocalBackend, DockerBackend):
        assert construction.__bases__ == (PlatformBackend,)
        overridden = {n for n in vars(construction) if n in vars(PlatformBackend)} - {
            "__init__", "__doc__", "__module__", "__firstlineno__", "__static_attributes__"}
        assert not overridden, f"{construction.__name__} overrides {overridden}"


def test_the_local_backend_says_whether_it_limits_memory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_servebench.backends.local import LocalBackend
    from pytest_servebench.backends.local.shaping import Shaper

    monkeypatch.setenv("SERVEBENCH_NO_SHAPING", "1")
    with LocalBackend() as backend:
        can = backend.capabilities()
        assert not can.memory_limits and not can.cpu_limits
        assert can.limits.startswith("shaping turned off")
    monkeypatch.delenv("SERVEBENCH_NO_SHAPING")
    shaper = Shaper()
    with LocalBackend(shaper=shaper) as backend:
        assert backend.capabilities().memory_limits == shaper.can_shape
        assert backend.capabilities().limits == shaper.reason
