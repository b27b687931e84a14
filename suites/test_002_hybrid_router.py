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

from typing import Any

import pytest

from pytest_servebench import ClosedLoop

STUDY = "002"
DEPLOYMENTS = ["hybrid", "serverless", "server"]
HEAVY = "ssd_resnet50"
FUNCTION_MB = 1024  # every function of the study, so the deployments compare like for like


@pytest.fixture(scope="module")
def deployments(servebench_backend: Any) -> Any:
    made: dict[tuple[str, str], Any] = {}

    def get(deployment: str, kind: str) -> Any:
        key = (deployment, kind)
        if key in made:
            return made[key]
        be = servebench_backend
        if deployment == "server":
            model = "text_rf" if kind == "text" else HEAVY
            made[key] = be.server(model, platform="ec2", instance_type="c5.large")
        elif deployment == "serverless":
            model = "text_rf" if kind == "text" else HEAVY
            made[key] = be.function(model, memory_mb=FUNCTION_MB, name=f"s002-{model}",
                                    timeout_s=60)
        else:  # the hybrid front serves both kinds; images go on to the heavy server
            offload = get("server", "image")
            front = be.function("text_rf", memory_mb=FUNCTION_MB, name="s002-router",
                                timeout_s=60,
                                handler="targets.router.handler",
                                environment={"SERVEBENCH_OFFLOAD_URL": offload.url})
            made[("hybrid", "text")] = made[("hybrid", "image")] = front
        return made[key]

    return get


@pytest.fixture(scope="module")
def payloads() -> dict[str, Any]:
    from targets.payloads import jpeg, texts

    return {"text": [{"text": t} for t in texts(16, seed=2)], "image": [jpeg(640, 480, seed=2)]}


def _marks(deployment: str) -> Any:
    return pytest.mark.study_target("ec2" if deployment == "server" else "lambda")


@pytest.mark.parametrize("kind", ["text", "image"])
@pytest.mark.parametrize("deployment", [pytest.param(d, marks=_marks(d)) for d in DEPLOYMENTS])
def test_request_kind_on_deployment(servebench: Any, deployments: Any, payloads: Any,
                                    findings: Any, slo: dict[str, Any], deployment: str,
                                    kind: str) -> None:
    target = deployments(deployment, kind)
    result = servebench.run(ClosedLoop(concurrency=1, requests=slo["warm_requests"],
                                       warmup_requests=2),
                            payloads=payloads[kind], target=target)
    result.check(f"success_ratio >= {slo['success_ratio_min']}",
                 f"{slo['tail']} < {slo['warm_tail_max']}")
    findings.results[STUDY][(deployment, kind)] = result


def test_finding_the_light_model_is_stable_in_the_function(findings: Any) -> None:
    text = findings.need(STUDY, [("serverless", "text")], "the text model in a function")[0]
    # Stable: the tail stays within a small multiple of the median.
    assert text.latency.p90.value <= 3 * text.p50.value, (text.p50.value, text.latency.p90.value)


def test_finding_the_heavy_model_belongs_on_the_server(findings: Any) -> None:
    on_fn, on_server = findings.need(STUDY, [("serverless", "image"), ("server", "image")],
                                     "the heavy model on both platforms")
    assert on_server.p50.value < on_fn.p50.value
    assert on_server.cost.usd_per_million < on_fn.cost.usd_per_million


def test_finding_routing_keeps_each_kind_on_its_better_platform(findings: Any,
                                                                 slo: dict[str, Any]) -> None:
    hybrid_text, hybrid_image, fn_text, fn_image = findings.need(
        STUDY, [("hybrid", "text"), ("hybrid", "image"), ("serverless", "text"),
                ("serverless", "image")], "the hybrid and all-serverless deployments")
    # Images through the router are faster than images in a function, despite the extra hop.
    assert hybrid_image.p50.value < fn_image.p50.value
    # Text stays in the function: about the latency of the all-serverless text path.
    assert hybrid_text.p50.value < slo["router_text_slowdown_max"] * fn_text.p50.value


def _usd(result: Any) -> float:
    assert result.cost is not None, result.target
    return float(result.cost.usd_per_request)


def test_finding_the_hybrid_mix_costs_less_than_all_serverless(findings: Any,
                                                               slo: dict[str, Any]) -> None:
    """Per request of the mix: the hybrid pays the router's billed time (it waits for the
    server, and Lambda bills the wait) plus the server's share for images; all-serverless pays
    the heavy model's billed time in a function."""
    keys = [(d, k) for d in DEPLOYMENTS for k in ("text", "image")]
    got = dict(zip(keys, findings.need(STUDY, keys, "all three deployments"), strict=True))
    share = slo["mix_text_share"]

    def mix(text_usd: float, image_usd: float) -> float:
        return share * text_usd + (1 - share) * image_usd

    hybrid = mix(_usd(got["hybrid", "text"]),
                 _usd(got["hybrid", "image"]) + _usd(got["server", "image"]))
    serverless = mix(_usd(got["serverless", "text"]), _usd(got["serverless", "image"]))
    server = mix(_usd(got["server", "text"]), _usd(got["server", "image"]))
    findings.values[STUDY]["usd_per_million_mix"] = {
        "hybrid": hybrid * 1e6, "serverless": serverless * 1e6, "server": server * 1e6}
    print("usd per million requests of the mix:", {k: round(v, 3) for k, v in
                                                    findings.values[STUDY]["usd_per_million_mix"].items()})
    assert hybrid < serverless, findings.values[STUDY]["usd_per_million_mix"]
