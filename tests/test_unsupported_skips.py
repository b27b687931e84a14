"""A backend's ``Unsupported`` (a limit of where the run happens: no GPU here, an offline
stand-in that refuses container images) ends a test as skipped with its message; any other
error still fails it."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_unsupported_skips_with_its_reason_and_other_errors_fail(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_limits="""
        from pytest_servebench.backends.base import Unsupported
        from pytest_servebench.gpu import GpuUnavailable

        def test_no_gpu():
            raise GpuUnavailable("g4dn.xlarge needs a GPU, and this machine has none")

        def test_stand_in():
            raise Unsupported("the Lambda endpoint here refused a container image")

        def test_a_real_fault():
            raise RuntimeError("the code under test is wrong")
    """)
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider",
                                           "--servebench-history=h.json")
    result.assert_outcomes(skipped=2, failed=1)
    result.stdout.fnmatch_lines([
        "*SKIPPED*g4dn.xlarge needs a GPU, and this machine has none*",
        "*SKIPPED*the Lambda endpoint here refused a container image*",
    ])
    assert "the code under test is wrong" in result.stdout.str()


def test_the_offline_pair_runs_on_the_default_sizes() -> None:
    """suites/conftest.py: the [aws] sizes (003's 200 users) assume the cloud; the pair on
    loopback gets the defaults."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "suites" / "conftest.py"
    spec = importlib.util.spec_from_file_location("suites_conftest_for_test", path)
    assert spec is not None and spec.loader is not None
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    assert conftest.offline_aws_pair({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})
    assert conftest.offline_aws_pair({"AWS_ENDPOINT_URL_LAMBDA": "http://localhost:9001"})
    assert not conftest.offline_aws_pair({})
    assert not conftest.offline_aws_pair(
        {"AWS_ENDPOINT_URL_LAMBDA": "https://lambda.eu-west-1.amazonaws.com"})
