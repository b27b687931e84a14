from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# pytester's in-process runs restore sys.modules after each inner session, and numpy's C core
# cannot be loaded twice in one process: load the heavy modules once, out here.
import scipy.stats  # noqa: F401

from .loopback import Behaviour, LoopbackServer

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session", autouse=True)
def own_machine_lock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Our tests check behaviour, not speed: their runs take a lock of this session's own
    (inherited by pytester's subprocesses), so another benchmark session on a shared machine
    cannot make them wait for the machine-wide one (see pytest_servebench.xdist)."""
    old = os.environ.get("SERVEBENCH_MACHINE_LOCK")
    os.environ["SERVEBENCH_MACHINE_LOCK"] = str(tmp_path_factory.getbasetemp() / "machine.lock")
    yield
    if old is None:
        os.environ.pop("SERVEBENCH_MACHINE_LOCK", None)
    else:
        os.environ["SERVEBENCH_MACHINE_LOCK"] = old


@pytest.fixture
def loopback() -> Iterator[Callable[..., LoopbackServer]]:
    """Start loopback servers with given behaviour; all are stopped after the test."""
    started: list[LoopbackServer] = []

    def start(**behaviour: object) -> LoopbackServer:
        server = LoopbackServer(Behaviour(**behaviour))  # type: ignore[arg-type]
        started.append(server.__enter__())
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    """A Docker SDK client. Without an engine, container tests skip saying so; with
    ``SERVEBENCH_REQUIRE_DOCKER=1`` (CI sets it: it installs and starts Docker) they fail
    instead, so a broken engine cannot hide the feature."""
    from pytest_servebench.backends.docker.engine import EngineError, docker_client

    try:
        return docker_client()
    except EngineError as exc:
        if os.environ.get("SERVEBENCH_REQUIRE_DOCKER"):
            pytest.fail(f"SERVEBENCH_REQUIRE_DOCKER is set but {exc}")
        pytest.skip(f"no Docker engine: {exc}")


@pytest.fixture(params=[[], ["-n", "2"]], ids=["serial", "xdist"])
def plugin_args(request: pytest.FixtureRequest) -> list[str]:
    """Run pytester sessions with and without xdist (as syrupy does)."""
    return list(request.param)
