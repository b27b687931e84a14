"""Hooks that let users and other plugins extend pytest-servebench (define them in conftest.py).

``firstresult`` hooks replace a value; the others add to one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from .cost import CostEstimate
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


@pytest.hookspec(firstresult=True)
def pytest_servebench_price(config: pytest.Config, result: Result) -> CostEstimate | None:
    """Price a result: return a ``CostEstimate`` to replace the built-in price model (private
    pricing, savings plans, another cloud), or None to let the next implementation try. The
    built-in one reads the price book (``--servebench-prices``) and the target's profile.
    Example, in conftest.py (a 17% compute savings plan)::

        def pytest_servebench_price(config, result):
            from pytest_servebench.cost import price_result, load_price_book
            base = price_result(result, load_price_book())
            if base is not None:
                return dataclasses.replace(base, usd_per_request=base.usd_per_request * 0.83,
                                           basis=base.basis + ", savings plan -17%")
    """


def pytest_servebench_result(config: pytest.Config, nodeid: str, result: Result) -> None:
    """Called for every result a test produces, as soon as it is measured (history and
    exporters hook in here). The plugin's own implementation collects the result for the
    history: its entry is made when the test's call ends, once the test's SLO verdicts are
    known. Example, in conftest.py (results to a dashboard as they come)::

        def pytest_servebench_result(config, nodeid, result):
            dashboard.send(nodeid, p99_s=result.p99.value, throughput=result.throughput)
    """


def pytest_servebench_update_metadata(config: pytest.Config, metadata: dict[str, Any]) -> None:
    """Add to the run's metadata (machine, versions, anything your comparisons should know)."""
