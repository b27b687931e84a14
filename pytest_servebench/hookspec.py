"""Hooks that let users and other plugins extend pytest-servebench (define them in conftest.py).

``firstresult`` hooks replace a value; the others add to one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from .result import Result
    from .target import Target


@pytest.hookspec(firstresult=True)
def pytest_servebench_make_target(
    config: pytest.Config, name: str
) -> AbstractContextManager[Target] | None:
    """Provision the target named by ``--target=NAME`` for the session.

    Return a context manager that yields a ``Target`` and tears it down on exit, or None to let
    the next implementation try. Example, in conftest.py::

        @contextlib.contextmanager
        def _staging():
            yield HttpTarget("https://staging.example.com/predict", name="staging")

        def pytest_servebench_make_target(config, name):
            if name == "staging":
                return _staging()
    """


def pytest_servebench_result(config: pytest.Config, nodeid: str, result: Result) -> None:
    """Called for every result a test produces (history and exporters hook in here)."""


def pytest_servebench_update_metadata(config: pytest.Config, metadata: dict[str, Any]) -> None:
    """Add to the run's metadata (machine, versions, anything your comparisons should know)."""
