"""Study 003: AWS Lambda vs AWS Fargate for event-driven inference
(``shared/seeds/003_b8f89c5eccb14a2b.txt``).

Configurations 512 MB / 0.25 vCPU, 1,024 MB / 0.5 vCPU and 2,048 MB / 1 vCPU on both platforms:
cold start per configuration, warm latency by payload size (50 KB, 500 KB, 2 MB), throughput at
50/100/200 concurrent users (scaled in quick mode), and cost per 1,000 requests. A Fargate cold
start is a new task: the server process started, ready, and its first answer.

With ``--target=http --servebench-url=URL`` the payload and user sweeps measure that endpoint
(serving MobileNetV2 on the raw JPEG body, as ``servebench serve mobilenet_v2`` does); cold
starts and cost need a platform this suite deploys, and say so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from pytest_servebench import ClosedLoop
from pytest_servebench.backends.base import Backend
from pytest_servebench.deployments import Deployments
from pytest_servebench.target import Target

# A module's targets by key (the ``deployed`` fixture).
Deployed = Callable[[str, tuple[int, float]], Target]
STUDY = "003"
CONFIGS = [(512, 0.25), (1024, 0.5), (2048, 1.0)]  # Lambda MB, Fargate vCPU (memory = 2 x vCPU GB)
PLATFORMS = [pytest.param("lambda", marks=pytest.mark.study_target("lambda")),
             pytest.param("fargate", marks=pytest.mark.study_target("fargate"))]


# What an endpoint of unknown platform can be asked; the other cases say why they need a
# platform deployed by the backend.
HTTP_CASES = ("test_warm_latency_by_payload", "test_finding_latency_grows_with_payload",
              "test_throughput_by_users")
HTTP_SKIP = ("--target=http measures a running endpoint: its cold start cannot be forced and it "
             "has no price; --target=lambda or --target=fargate deploy their own")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "platform" not in metafunc.fixturenames:
        return
    if metafunc.config.getoption("servebench_target") != "http":
        metafunc.parametrize("platform", PLATFORMS)
        return
    marks = [pytest.mark.study_target("http")]
    if metafunc.function.__name__ not in HTTP_CASES:
        marks.append(pytest.mark.skip(reason=HTTP_SKIP))
    metafunc.parametrize("platform", [pytest.param("http", marks=marks)])


def _config_id(c: tuple[int, float]) -> str:
    return f"{c[0]}MB-{c[1]:g}vCPU"


@pytest.fixture(scope="module")
def deployed(servebench_deploy: Deployments) -> Deployed:
    """A platform's target of one configuration (memory MB, vCPU); ``http``: the endpoint."""

    def get(platform: str, config: tuple[int, float]) -> Target:
        mb, vcpu = config

        def deploy(backend: Backend) -> Target:
            if platform == "lambda":
                return backend.function("mobilenet_v2", memory_mb=mb, name=f"s003-{mb}")
            return backend.server("mobilenet_v2", platform="fargate", vcpu=vcpu,
                                  memory_gb=2 * vcpu)

        return servebench_deploy.get((platform, config), deploy)

    return get


@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
def test_cold_start(servebench: Any, servebench_backend: Any, deployed: Deployed, findings: Any,
                    slo: dict[str, Any], image: bytes, platform: str,
                    config: tuple[int, float]) -> None:
    colds: list[float] = []
    for _ in range(slo["cold_repeats"]):
        if platform == "lambda":
            fn = deployed(platform, config)
            servebench_backend.force_cold(fn)
            r = servebench.run(ClosedLoop(concurrency=1, requests=1), payload=image, target=fn)
            assert r.cold_starts is not None and r.cold_starts.count == 1
            colds.append(r.p50.value)
        else:
            started = time.perf_counter()
            task = servebench_backend.server("mobilenet_v2", platform="fargate",
                                             vcpu=config[1], memory_gb=2 * config[1])
            r = servebench.run(ClosedLoop(concurrency=1, requests=1), payload=image,
                               target=task)
            colds.append(time.perf_counter() - started)
            servebench_backend.stop_server(task)
        r.check("success_ratio >= 1", f"max < {slo['cold_start_max']}")
    findings.values[STUDY][("cold", platform, config)] = colds


def test_finding_more_cpu_starts_faster(findings: Any, platform: str) -> None:
    """The fastest of the largest configuration's cold starts against the fastest of the
    smallest's (cold_repeats each: too few for an interval). Load only ever adds to a cold
    start, and unevenly: the smallest configuration is held to about a quarter of a core
    whatever the machine is doing, while the largest gets only the CPU the machine has spare,
    so the medians of three can meet on a busy machine; each configuration's best start is
    what its CPU allows."""
    got = findings.values.get(STUDY, {})
    colds: list[list[float] | None] = [got.get(("cold", platform, c)) for c in CONFIGS]
    if any(c is None for c in colds):
        pytest.skip(f"needs the {platform} cold starts of all three configurations in this run")
    best = [min(c) for c in colds if c is not None]
    assert best[-1] < best[0], (
        f"{platform} cold start should fall from the smallest to the largest configuration: "
        + "; ".join(f"{_config_id(c)} " + ", ".join(f"{v * 1000:.0f}" for v in sorted(vs))
                    + " ms" for c, vs in zip(CONFIGS, colds, strict=True) if vs is not None))


def test_warm_latency_by_payload(servebench: Any, deployed: Deployed, findings: Any,
                                 slo: dict[str, Any], platform: str, payload_bytes: int) -> None:
    from targets.payloads import jpeg_of_size

    target = deployed(platform, CONFIGS[-1])
    result = servebench.run(ClosedLoop(concurrency=1, requests=slo["warm_requests"],
                                       warmup_requests=2),
                            payload=jpeg_of_size(payload_bytes), target=target)
    result.check(f"success_ratio >= {slo['success_ratio_min']}",
                 f"{slo['tail']} < {slo['warm_tail_max']}")
    findings.results[STUDY][("payload", platform, payload_bytes)] = result


def test_finding_latency_grows_with_payload(findings: Any, slo: dict[str, Any],
                                            platform: str) -> None:
    sizes = slo["payload_sizes"]
    runs = findings.need(STUDY, [("payload", platform, s) for s in sizes],
                         f"the {platform} payload sweep")
    # Decidedly (95% intervals): the largest payload takes several times the smallest here.
    assert runs[0].p50.high < runs[-1].p50.low, (
        f"{platform}: p50 {findings.shown(runs[0].p50)} at {sizes[0]} B is not decidedly "
        f"below {findings.shown(runs[-1].p50)} at {sizes[-1]} B")


def test_throughput_by_users(servebench: Any, deployed: Deployed, findings: Any,
                             slo: dict[str, Any], image: bytes, platform: str,
                             users: int) -> None:
    target = deployed(platform, CONFIGS[-1])
    result = servebench.run(ClosedLoop(concurrency=users, requests=8 * users,
                                       warmup_requests=users), payload=image, target=target)
    result.check(f"success_ratio >= {slo['success_ratio_min']}")
    if platform != "http":  # an endpoint of unknown platform has no price
        assert result.cost is not None
    findings.results[STUDY][("users", platform, users)] = result


def test_finding_throughput_scales_with_users(servebench_backend: Any, findings: Any,
                                              slo: dict[str, Any]) -> None:
    """The study's throughput grew with users (48/92/178 req/s at 50/100/200) because each user
    brought the cloud more machines: on the aws backend, Lambda's throughput at the most users
    is decidedly (95% intervals) above ``throughput_growth_min`` times that at the fewest."""
    if not servebench_backend.capabilities().elastic:
        pytest.skip("the study's throughput grew with users because each user brought the "
                    "cloud more machines; here every sandbox and task shares this machine's "
                    f"cores ({servebench_backend.capabilities().limits}): run it with "
                    "--servebench-backend=aws --target=lambda against AWS")
    fewest, most = findings.need(STUDY, [("users", "lambda", u) for u in
                                         (slo["users"][0], slo["users"][-1])],
                                 "the Lambda user sweep")
    growth = slo["throughput_growth_min"]
    low, high = most.throughput_estimate().low, fewest.throughput_estimate().high
    assert low > growth * high, (
        f"Lambda's throughput at {slo['users'][-1]} users ({most.throughput:.1f}/s, low end "
        f"{low:.1f}/s) should be above {growth}x that at {slo['users'][0]} users "
        f"({fewest.throughput:.1f}/s, high end {high:.1f}/s)")


def test_cost_per_1000_requests(findings: Any, slo: dict[str, Any], platform: str) -> None:
    runs = findings.need(STUDY, [("users", platform, u) for u in slo["users"]],
                         f"the {platform} user sweep")
    for r in runs:
        assert r.cost is not None and r.cost.usd_per_1000 > 0
        assert r.metric("usd_per_1000").value == pytest.approx(r.cost.usd_per_1000)
