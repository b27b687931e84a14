"""``Deployments``: once per key, the http endpoint, servers stopped and functions removed at
close (newest first)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from pytest_servebench.backends.base import Backend, ServerTarget
from pytest_servebench.deployments import Deployments, is_http_key
from pytest_servebench.functions.client import FunctionTarget
from pytest_servebench.target import Target


class FakeBackend:
    """Only what ``Deployments`` calls: ``server``, ``function``, ``stop_server`` and
    ``remove_function``."""

    def __init__(self, *, failing_stop: str | None = None) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.removed: list[str] = []
        self.failing_stop = failing_stop

    def server(self, target: str, **_: Any) -> ServerTarget:
        self.started.append(target)
        return ServerTarget(url=f"http://127.0.0.1/{target}", name=target)

    def function(self, target: str, **_: Any) -> FunctionTarget:
        self.started.append(target)
        return FunctionTarget("http://127.0.0.1:9", target, name=target)

    def stop_server(self, target: ServerTarget) -> None:
        if target.name == self.failing_stop:
            raise RuntimeError(f"{target.name} would not stop")
        self.stopped.append(target.name)

    def remove_function(self, function: FunctionTarget) -> None:
        if function.name == self.failing_stop:
            raise RuntimeError(f"{function.name} would not go")
        self.removed.append(function.function)


def _deployments(backend: FakeBackend, endpoint: Target | None = None) -> Deployments:
    return Deployments(cast(Backend, backend), endpoint=lambda: endpoint)


def test_a_key_is_deployed_once_and_shared() -> None:
    backend = FakeBackend()
    d = _deployments(backend)
    first = d.get("a", lambda b: b.server("a"))
    again = d.get("a", lambda b: b.server("never"))
    other = d.get(("b", 1), lambda b: b.server("b"))
    assert first is again and other is not first
    assert backend.started == ["a", "b"]


def test_http_keys_are_the_endpoint_and_deploy_nothing() -> None:
    backend = FakeBackend()
    endpoint = cast(Target, ServerTarget(url="http://127.0.0.1:9/", name="endpoint"))
    d = _deployments(backend, endpoint)
    assert d.get("http", lambda b: b.server("x")) is endpoint
    assert d.get(("http", (1024, 1.0)), lambda b: b.server("x")) is endpoint
    assert backend.started == [] and d.servers == ()
    d.close()
    assert backend.stopped == []
    assert is_http_key("http") and is_http_key(("http", 2))
    assert not is_http_key("https-ish") and not is_http_key(("lambda", "http"))


def test_an_http_key_without_an_endpoint_says_so() -> None:
    with pytest.raises(LookupError, match="--target=http"):
        _deployments(FakeBackend()).get("http", lambda b: b.server("x"))


def test_close_stops_the_servers_and_removes_the_functions_newest_first() -> None:
    backend = FakeBackend()
    d = _deployments(backend)
    d.get("one", lambda b: b.server("one"))
    d.get("fn", lambda b: b.function("fn"))
    d.get("fn2", lambda b: b.function("fn2"))
    # a deployment that needs another (a front forwarding to a server) asks for it by key
    d.get("front", lambda b: (d.get("two", lambda b2: b2.server("two")), b.server("three"))[1])
    assert [s.name for s in d.servers] == ["one", "two", "three"]
    assert [f.name for f in d.functions] == ["fn", "fn2"]
    d.close()
    assert backend.stopped == ["three", "two", "one"]
    assert backend.removed == ["fn2", "fn"] and d.functions == ()
    d.close()  # safe twice
    assert backend.stopped == ["three", "two", "one"] and backend.removed == ["fn2", "fn"]


def test_a_failing_stop_does_not_keep_the_others_running() -> None:
    backend = FakeBackend(failing_stop="two")
    d = _deployments(backend)
    for name in ("one", "two", "three"):
        d.get(name, lambda b, n=name: b.server(n))  # type: ignore[misc]
    d.get("fn-two", lambda b: b.function("two"))
    d.get("fn-one", lambda b: b.function("one"))
    with pytest.raises(ExceptionGroup, match="2 deployment") as info:
        d.close()
    assert backend.stopped == ["three", "one"] and backend.removed == ["one"]
    assert [str(e) for e in info.value.exceptions] == ["two would not stop", "two would not go"]
    assert d.servers == () and d.functions == ()


def test_a_modules_servers_are_stopped_when_the_module_ends(pytester: pytest.Pytester) -> None:
    """Two test modules on a fake backend: the first's server is gone while the second runs."""
    pytester.makeconftest("""
        import pytest
        from pytest_servebench.backends.base import ServerTarget

        class Backend:
            def __init__(self):
                self.running = []
            def server(self, model, **kw):
                target = ServerTarget(url="http://127.0.0.1:9/" + model, name=model)
                self.running.append(model)
                return target
            def stop_server(self, target):
                self.running.remove(target.name)

        BACKEND = Backend()

        @pytest.fixture(scope="session")
        def servebench_backend():
            return BACKEND
    """)
    pytester.makepyfile(test_a="""
        def test_deploys(servebench_deploy, servebench_backend):
            servebench_deploy.get("a", lambda b: b.server("model-a"))
            servebench_deploy.get("a", lambda b: b.server("model-a"))
            assert servebench_backend.running == ["model-a"]
    """, test_b="""
        def test_the_first_modules_server_is_gone(servebench_deploy, servebench_backend):
            assert servebench_backend.running == []
            servebench_deploy.get("b", lambda b: b.server("model-b"))
            assert servebench_backend.running == ["model-b"]

        def test_at_the_end_of_the_module(servebench_backend):
            assert servebench_backend.running == ["model-b"]
    """)
    result = pytester.runpytest("-p", "no:randomly", "--servebench-no-save", "test_a.py",
                                "test_b.py")
    result.assert_outcomes(passed=3)
