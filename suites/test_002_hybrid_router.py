"""Study 002: a serverless front that runs the light model itself and routes the heavy one to a
server (``shared/seeds/002_f1418fd4f4677a2a.txt``).

The light model is the TF-IDF + random-forest text classifier (the study's cyberbullying
classifier); the heavy one is a detector (SSD-ResNet-50 here; YOLOv8 in the study, on a GPU
server). Three deployments serve the same mix of text and image requests: the hybrid (a
function running ``targets.router.handler``: text in the function, images forwarded to the
server), all-serverless (a function per model) and all-server (a server per model). Each case
measures one request kind on one deployment; the findings compare them. (All-server is priced
at the throughput it reached here, that is as if kept busy; it is reported, not asserted
against: the study's point is the idle server a bursty mix leaves, which a cost per request at
saturation cannot show.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_servebench import ClosedLoop
from pytest_servebench.backends.base import Backend, ServerTarget
from pytest_servebench.deployments import Deployments
from pytest_servebench.functions.client import FunctionTarget
from pytest_servebench.target import Target

# The target serving one kind of request in one deployment (the ``deployments`` fixture).
Deployed = Callable[[str, str], Target]
STUDY = "002"
DEPLOYMENTS = ["hybrid", "serverless", "server"]
HEAVY = "ssd_resnet50"
FUNCTION_MB = 1024  # every function of the study, so the deployments compare like for like


@pytest.fixture(scope="module")
def deployments(servebench_deploy: Deployments) -> Deployed:
    """The target that serves one kind of request in one deployment."""

    def get(deployment: str, kind: str) -> Target:
        model = "text_rf" if kind == "text" else HEAVY

        def server(backend: Backend) -> ServerTarget:
            return backend.server(model, platform="ec2", instance_type="c5.large")

        def function(backend: Backend) -> FunctionTarget:
            return backend.function(model, memory_mb=FUNCTION_MB, name=f"s002-{model}",
                                    timeout_s=60)

        def front(backend: Backend) -> FunctionTarget:
            # the hybrid front serves both kinds; images go on to the heavy server
            offload = get("server", "image")
            assert isinstance(offload, ServerTarget), offload
            return backend.function("text_rf", memory_mb=FUNCTION_MB, name="s002-router",
                                    timeout_s=60, handler="targets.router.handler",
                                    environment={"SERVEBENCH_OFFLOAD_URL": offload.url})

        if deployment == "server":
            return servebench_deploy.get((deployment, kind), server)
        if deployment == "serverless":
            return servebench_deploy.get((deployment, kind), function)
        return servebench_deploy.get("hybrid", front)  # one front for both kinds

    return get


@pytest.fixture(scope="module")
def payloads() -> dict[str, Any]:
    from targets.payloads import jpeg, texts

    return {"text": [{"text": t} for t in texts(16, seed=2)], "image": [jpeg(640, 480, seed=2)]}


def _marks(deployment: str) -> Any:
    return pytest.mark.study_target("ec2" if deployment == "server" else "lambda")


@pytest.mark.parametrize("kind", ["text", "image"])
@pytest.mark.parametrize("deployment", [pytest.param(d, marks=_marks(d)) for d in DEPLOYMENTS])
def test_request_kind_on_deployment(servebench: Any, deployments: Deployed, payloads: Any,
                                    findings: Any, slo: dict[str, Any], deployment: str,
                                    kind: str) -> None:
    target = deployments(deployment, kind)
    requests = slo["image_requests"] if kind == "image" else slo["warm_requests"]
    result = servebench.run(ClosedLoop(concurrency=1, requests=requests, warmup_requests=2),
                            payloads=payloads[kind], target=target)
    result.check(f"success_ratio >= {slo['success_ratio_min']}",
                 f"{slo['tail']} < {slo['warm_tail_max']}")
    findings.results[STUDY][(deployment, kind)] = result


def test_finding_the_light_model_is_stable_in_the_function(findings: Any,
                                                           slo: dict[str, Any]) -> None:
    """Stable: the tail stays within a small multiple of the median; fails when the p90 is
    decidedly (95% intervals) above ``light_tail_ratio_max`` times the p50."""
    text = findings.need(STUDY, [("serverless", "text")], "the text model in a function")[0]
    ratio = slo["light_tail_ratio_max"]
    p90 = text.latency.p90
    assert p90.low <= ratio * text.p50.high, (
        f"the text model's p90 {findings.shown(p90)} is decidedly above {ratio}x its p50 "
        f"{findings.shown(text.p50)}")


def _price_ratio(server: Any) -> float:
    """The server's price per second over the function's (``FUNCTION_MB``): how many times
    faster than the function the server must be to serve a request for less."""
    from pytest_servebench.pricebook import load_price_book

    book = load_price_book()
    hourly = book.instance(str(server.target_profile["instance_type"])).usd_per_hour
    return float(hourly / 3600 / (book.lambda_usd_per_gb_s() * FUNCTION_MB / 1024))


def _speedup(on_fn: Any, on_server: Any) -> float:
    """How many times faster the server served than the function: the least the 95%
    intervals allow."""
    return float(on_fn.p50.low / on_server.p50.high)


def test_finding_the_heavy_model_belongs_on_the_server(findings: Any,
                                                       slo: dict[str, Any]) -> None:
    """Faster on the server, decidedly (95% intervals). Cheaper too, which needs the server
    faster than the function by the ratio of their prices per second (c5.large against
    1,024 MB: about 1.4x). Here the server has the machine's two cores and the function a
    fraction of one, so a busy machine takes the server's lead down (to about 1.1x with two
    other processes running): the cost is asserted when the speedup is decidedly above that
    ratio, within ``drift_tolerance`` (the cost comes from throughput and mean billed time,
    the speedup from medians), and skips saying so when it is not."""
    on_fn, on_server = findings.need(STUDY, [("serverless", "image"), ("server", "image")],
                                     "the heavy model on both platforms")
    assert on_server.p50.high < on_fn.p50.low, (
        f"{HEAVY} on the server {findings.shown(on_server.p50)} is not decidedly faster than "
        f"in a function {findings.shown(on_fn.p50)}")
    server_usd, fn_usd = _usd(on_server) * 1e6, _usd(on_fn) * 1e6
    needed, speedup = _price_ratio(on_server), _speedup(on_fn, on_server)
    if not speedup > needed:
        pytest.skip(
            f"{HEAVY} is decidedly faster on the server ({findings.shown(on_server.p50)} vs "
            f"{findings.shown(on_fn.p50)} in a function), {speedup:.2f}x at the least, but "
            f"cheaper per request only when over {needed:.2f}x faster, which these intervals "
            f"do not decide (the machine's load slows the server more than the function): "
            f"${server_usd:.3f} vs ${fn_usd:.3f} per million")
    tolerance = slo["drift_tolerance"]
    assert server_usd < tolerance * fn_usd, (
        f"{HEAVY} per million on the server ${server_usd:.3f} ({on_server.cost.basis}) is over "
        f"{tolerance}x the function's ${fn_usd:.3f}, though it served {speedup:.2f}x+ faster "
        f"({needed:.2f}x needed)")


def test_finding_routing_keeps_each_kind_on_its_better_platform(findings: Any,
                                                                 slo: dict[str, Any]) -> None:
    hybrid_text, hybrid_image, fn_text, fn_image = findings.need(
        STUDY, [("hybrid", "text"), ("hybrid", "image"), ("serverless", "text"),
                ("serverless", "image")], "the hybrid and all-serverless deployments")
    # Images through the router are decidedly faster than images in a function, despite the
    # extra hop.
    assert hybrid_image.p50.high < fn_image.p50.low, (
        f"images through the router {findings.shown(hybrid_image.p50)} are not decidedly faster "
        f"than in a function {findings.shown(fn_image.p50)}")
    # Text stays in the function: about the latency of the all-serverless text path, that is
    # not decidedly slower than it by more than the factor.
    slowdown = slo["router_text_slowdown_max"]
    assert hybrid_text.p50.low < slowdown * fn_text.p50.high, (
        f"text through the router {findings.shown(hybrid_text.p50)} is decidedly over "
        f"{slowdown}x text in its own function {findings.shown(fn_text.p50)}")


def _usd(result: Any) -> float:
    assert result.cost is not None, result.target
    return float(result.cost.usd_per_request)


def test_finding_the_hybrid_mix_costs_less_than_all_serverless(findings: Any,
                                                               slo: dict[str, Any]) -> None:
    """Per request of the mix: the hybrid pays the router's billed time (it waits for the
    server, and Lambda bills the wait) plus the server's share for images; all-serverless pays
    the heavy model's billed time in a function.

    The saving rests on the study's premise, a server much faster than the function (a GPU
    there): an image through the hybrid bills the router's GB-seconds for the server's
    latency plus the server's hourly price for it, so it is cheaper only when the function
    takes more than ``1 + server $/s / (function $/GB-s x GB)`` times as long as the server
    (about 2.4x for c5.large against 1,024 MB). On this machine the server shares two cores
    with everything else while the function is held to a fraction of one, so a busy neighbour
    can take the server below that speedup: the finding is asserted when the measured speedup
    is decidedly (95% intervals) above it, and skips saying so when it is not."""
    keys = [(d, k) for d in DEPLOYMENTS for k in ("text", "image")]
    got = dict(zip(keys, findings.need(STUDY, keys, "all three deployments"), strict=True))
    share: float = slo["mix_text_share"]

    def mix(text_usd: float, image_usd: float) -> float:
        return share * text_usd + (1 - share) * image_usd

    hybrid = mix(_usd(got["hybrid", "text"]),
                 _usd(got["hybrid", "image"]) + _usd(got["server", "image"]))
    serverless = mix(_usd(got["serverless", "text"]), _usd(got["serverless", "image"]))
    server = mix(_usd(got["server", "text"]), _usd(got["server", "image"]))
    usd_per_million = {"hybrid": hybrid * 1e6, "serverless": serverless * 1e6,
                       "server": server * 1e6}
    findings.values[STUDY]["usd_per_million_mix"] = usd_per_million
    print("usd per million requests of the mix:",
          {k: round(v, 3) for k, v in usd_per_million.items()})

    fn_image, server_image = got["serverless", "image"], got["server", "image"]
    # The router bills its wait for the server on top of the server's own share.
    needed = 1 + _price_ratio(server_image)
    speedup = _speedup(fn_image, server_image)
    if not speedup > needed:
        pytest.skip(
            f"the hybrid saves only with a server over {needed:.2f}x faster than the function "
            f"on {HEAVY}; here the server's p50 {findings.shown(server_image.p50)} against the "
            f"function's {findings.shown(fn_image.p50)} is not decidedly so ({speedup:.2f}x at "
            f"the least; the server shares the machine's cores with its load); mix per "
            "million: " + ", ".join(f"{k} ${v:.3f}" for k, v in usd_per_million.items()))
    assert hybrid < serverless, (
        f"the server was {speedup:.2f}x+ faster than the function ({needed:.2f}x needed), yet "
        f"the hybrid mix costs ${hybrid * 1e6:.3f} per million against all-serverless "
        f"${serverless * 1e6:.3f}")
