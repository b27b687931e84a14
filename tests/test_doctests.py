"""The docstring examples in the package run as tests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["cost", "histogram", "metrics", "session", "slo", "stats", "workloads"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"pytest_servebench.{name}")
    failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failures == 0
