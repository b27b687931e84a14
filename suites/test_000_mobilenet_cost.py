"""Study 000: cost-performance of MobileNetV2 on AWS Lambda (1,024 MB, x86), EC2 c5.large (x86)
and EC2 t4g.medium (arm64) (``shared/seeds/000_418c4bbb5ea4e797.txt``).

Each sweep case is a point of the study's throughput/latency figure: one standard JPEG per
request, a closed loop at a concurrency from 1 to 16. The findings asserted here are the
study's shape, measured in this run: a server at saturation costs less per million inferences
than the function, and a cold start costs many warm calls. (On a 2-core machine the servers
saturate at concurrency 1: the load generator shares their cores, so throughput does not grow
along the sweep as it did on the study's separate client.) The study's ARM finding needs an
arm64 machine, which this backend does not have.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import pytest

from pytest_servebench import ClosedLoop
from pytest_servebench.backends.base import Backend
from pytest_servebench.deployments import Deployments
from pytest_servebench.target import Target

# A module's targets by key (the ``deployed`` fixture).
Deployed = Callable[[str], Target]
STUDY = "000"
LAMBDA = pytest.param("lambda-1024", marks=pytest.mark.study_target("lambda"), id="lambda-1024")
C5 = pytest.param("ec2-c5.large", marks=pytest.mark.study_target("ec2"), id="ec2-c5.large")
T4G = pytest.param("ec2-t4g.medium", marks=pytest.mark.study_target("ec2"),
                   id="ec2-t4g.medium")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With ``--target=http --servebench-url=URL`` the sweep measures that endpoint (serving
    MobileNetV2 on the raw JPEG body, as ``servebench serve mobilenet_v2`` does) instead of
    deploying the study's three targets."""
    if metafunc.function.__name__ != "test_concurrency_sweep":
        return
    if metafunc.config.getoption("servebench_target") == "http":
        metafunc.parametrize("key", [pytest.param("http", marks=pytest.mark.study_target("http"),
                                                  id="http")])
    else:
        metafunc.parametrize("key", [LAMBDA, C5, T4G])


@pytest.fixture(scope="module")
def deployed(servebench_deploy: Deployments) -> Deployed:
    """The study's targets by key (``lambda-1024``, ``ec2-<instance type>``, ``http``)."""

    def get(key: str) -> Target:
        def deploy(backend: Backend) -> Target:
            if key == "lambda-1024":
                return backend.function("mobilenet_v2", memory_mb=1024,
                                        name="s000-mobilenet-1024")
            return backend.server("mobilenet_v2", platform="ec2",
                                  instance_type=key.split("-", 1)[1])

        return servebench_deploy.get(key, deploy)

    return get


def test_concurrency_sweep(servebench: Any, deployed: Deployed, findings: Any, slo: dict[str, Any],
                           image: bytes, key: str, concurrency: int) -> None:
    target = deployed(key)
    result = servebench.run(
        ClosedLoop(concurrency=concurrency, requests=slo["requests_per_point"],
                   warmup_requests=concurrency),  # cold starts land in the warm-up
        payload=image, target=target)
    findings.results[STUDY][(key, concurrency)] = result
    result.check(f"success_ratio >= {slo['success_ratio_min']}",
                 f"{slo['tail']} < {slo['warm_tail_max']}")
    if key != "http":  # an endpoint of unknown platform has no price
        assert result.cost is not None, "every target of this study has a price"


@pytest.mark.study_target("lambda")
def test_cold_start_costs_many_warm_calls(servebench: Any, servebench_backend: Any,
                                          deployed: Deployed, findings: Any, slo: dict[str, Any],
                                          image: bytes) -> None:
    fn = deployed("lambda-1024")
    colds = []
    for _ in range(slo["cold_repeats"]):
        servebench_backend.force_cold(fn)
        cold = servebench.run(ClosedLoop(concurrency=1, requests=1), payload=image, target=fn)
        assert cold.cold_starts is not None and cold.cold_starts.count == 1
        colds.append(cold.p50.value)
        cold.check(f"max < {slo['cold_start_max']}")
    warm = servebench.run(ClosedLoop(concurrency=1, requests=40), payload=image, target=fn)
    assert warm.cold_starts is not None and warm.cold_starts.count == 0
    ratio = statistics.median(colds) / warm.p50.value
    findings.values[STUDY]["cold_warm_ratio"] = ratio
    assert ratio >= slo["cold_warm_ratio_min"], (
        f"cold start {statistics.median(colds) * 1000:.0f} ms is only {ratio:.1f}x a warm call "
        f"({warm.p50.value * 1000:.1f} ms); the study found 21x")


def _saturation(findings: Any, key: str, points: list[int]) -> Any:
    results = findings.need(STUDY, [(key, c) for c in points], f"the {key} sweep")
    return max(results, key=lambda r: r.throughput)


def test_finding_servers_at_saturation_cost_less_per_million(findings: Any,
                                                             slo: dict[str, Any]) -> None:
    points = slo["concurrency"]
    lam = findings.need(STUDY, [("lambda-1024", c) for c in points], "the Lambda sweep")
    cheapest_function = min(r.cost.usd_per_million for r in lam)
    for key in ("ec2-c5.large", "ec2-t4g.medium"):
        best = _saturation(findings, key, points)
        assert best.cost.usd_per_million < cheapest_function, (
            f"{key} at saturation ({best.throughput:.0f} inferences/s): "
            f"${best.cost.usd_per_million:.3f} per million, not below Lambda's "
            f"${cheapest_function:.3f}")


def test_finding_arm_degrades_under_concurrency(findings: Any, slo: dict[str, Any]) -> None:
    """The study's t4g.medium (arm64) lost more of its latency to concurrency than c5.large:
    its p50 at the highest concurrency grows by a larger factor over its p50 at 1. Decided
    only where the arm64 server really ran on arm64 (not on this machine standing in)."""
    points = slo["concurrency"]
    arm = findings.need(STUDY, [("ec2-t4g.medium", c) for c in points], "the t4g.medium sweep")
    x86 = findings.need(STUDY, [("ec2-c5.large", c) for c in points], "the c5.large sweep")
    notes = {str(r.target_profile.get(k)) for r in arm
             for k in ("arch_note", "address_note") if r.target_profile.get(k)}
    if notes:
        pytest.skip("t4g.medium did not run on arm64 here: " + "; ".join(sorted(notes)))
    arm_growth = arm[-1].p50.low / arm[0].p50.high
    x86_growth = x86[-1].p50.high / x86[0].p50.low
    assert arm_growth > x86_growth, (
        f"t4g.medium's p50 grew {arm_growth:.2f}x (at least) from concurrency {points[0]} to "
        f"{points[-1]}, c5.large's {x86_growth:.2f}x (at most): arm64 should degrade more")
