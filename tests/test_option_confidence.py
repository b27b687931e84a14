"""--servebench-confidence and --servebench-slo-estimate."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .loopback import LoopbackServer

SMALL_SAMPLE = """
import pytest
from pytest_servebench import ClosedLoop

@pytest.mark.slo("p99 < 5s")
def test_small(servebench):
    r = servebench.run(ClosedLoop(concurrency=1, requests=100), payload=b"x")
    assert r.confidence == {confidence}
"""


def test_confidence_reaches_results(pytester: pytest.Pytester,
                                    loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(SMALL_SAMPLE.format(confidence=0.9))
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                                "--servebench-confidence=0.9")
    # 100 samples cannot bound p99 even at 90%: inconclusive, with the sample count to settle it.
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*p99 < 5s: INCONCLUSIVE*90% CI*about 299 samples would settle*"])


def test_invalid_confidence_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(servebench): pass")
    result = pytester.runpytest("--servebench-confidence=1.5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*confidence must be in*"])


def test_point_estimates_settle_small_samples(pytester: pytest.Pytester,
                                              loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(SMALL_SAMPLE.format(confidence=0.95))
    args = ["--target=http", f"--servebench-url={server.url}"]
    assert pytester.runpytest(*args).ret == 1
    result = pytester.runpytest(*args, "--servebench-slo-estimate=point")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_small*http*100*pass*"])
