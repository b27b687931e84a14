"""Targets a test module deploys, by key: deployed once on first use, stopped when the module ends.

The ``servebench_deploy`` fixture (module scope) is a ``Deployments`` on the session's backend.
A suite names each deployment with a key and says how to make it; cases that share a key share
the target, and the servers the module started are stopped at its end (in reverse order), so
one module's servers do not hold CPU and memory through the next one's measurements::

    @pytest.fixture(scope="module")
    def deployed(servebench_deploy: Deployments) -> Callable[[str], Target]:
        def get(key: str) -> Target:
            return servebench_deploy.get(key, lambda backend: backend.server(
                "mobilenet_v2", platform="ec2", instance_type=key))
        return get

A key that is ``"http"``, or a tuple whose first item is ``"http"``, is the running endpoint of
``--target=http --servebench-url=URL`` instead: nothing is deployed for it and nothing stopped.

Functions are recorded but stay until the backend closes at session end: the ``Backend``
protocol has no way to remove one function yet.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .backends.base import Backend, ServerTarget
    from .target import Target


def is_http_key(key: Hashable) -> bool:
    """Whether ``key`` names the ``--target=http`` endpoint: ``"http"`` or ``("http", ...)``."""
    if isinstance(key, tuple):
        return bool(key) and key[0] == "http"
    return key == "http"


class Deployments:
    """Targets deployed through ``backend`` once per key; ``close`` stops the servers started
    and removes the functions deployed.

    ``endpoint`` gives the ``--target=http`` endpoint (None without one); it is called only
    when an http key is first asked for.
    """

    def __init__(self, backend: Backend, *, endpoint: Callable[[], Target | None]) -> None:
        self._backend = backend
        self._endpoint = endpoint
        self._targets: dict[Hashable, Target] = {}
        self._servers: list[ServerTarget] = []
        self._functions: list[Target] = []

    def get(self, key: Hashable, deploy: Callable[[Backend], Target]) -> Target:
        """The target deployed under ``key``: ``deploy(backend)`` the first time, the same
        target after. ``deploy`` may ask for other keys (a front that forwards to a server)."""
        if key in self._targets:
            return self._targets[key]
        if is_http_key(key):
            target = self._endpoint()
            if target is None:
                raise LookupError(f"deployment {key!r} is the --target=http endpoint, and this "
                                  "session has none (--target=http --servebench-url=URL)")
        else:
            target = deploy(self._backend)
            self._record(target)
        self._targets[key] = target
        return target

    @property
    def servers(self) -> tuple[ServerTarget, ...]:
        """The servers started here and not stopped yet, oldest first."""
        return tuple(self._servers)

    @property
    def functions(self) -> tuple[Target, ...]:
        """The functions deployed here and not removed yet, oldest first."""
        return tuple(self._functions)

    def close(self) -> None:
        """Stop every server and remove every function deployed here, newest first; one that
        fails does not keep the others: the failures are raised together at the end. Safe to
        call twice."""
        from .functions.client import FunctionTarget

        errors: list[Exception] = []
        while self._servers:
            server = self._servers.pop()
            try:
                self._backend.stop_server(server)
            except Exception as exc:  # every server gets its stop
                errors.append(exc)
        while self._functions:
            function = self._functions.pop()
            if not isinstance(function, FunctionTarget):
                continue
            try:
                self._backend.remove_function(function)
            except Exception as exc:
                errors.append(exc)
        self._targets.clear()
        if errors:
            raise ExceptionGroup(f"servebench: {len(errors)} deployment(s) failed to stop",
                                 errors)

    def _record(self, target: Target) -> None:
        from .backends.base import ServerTarget

        if isinstance(target, ServerTarget):
            if not any(s is target for s in self._servers):
                self._servers.append(target)
        elif not any(f is target for f in self._functions):
            self._functions.append(target)


@pytest.fixture(scope="module")
def servebench_deploy(request: pytest.FixtureRequest,
                      servebench_backend: Backend) -> Iterator[Deployments]:
    """The module's deployments on the session's backend (``Deployments.get(key, deploy)``);
    the servers they started are stopped and the functions removed when the module ends."""

    def endpoint() -> Target | None:
        target: Target | None = request.getfixturevalue("servebench_target")
        return target

    deployments = Deployments(servebench_backend, endpoint=endpoint)
    yield deployments
    deployments.close()
