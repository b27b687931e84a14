"""Study 004: serverless model serving vs a server under bursty load, ONNX Runtime vs a heavier
framework in the function, and the cold start split into its steps
(``shared/seeds/004_879fac299c025206.txt``).

Cases: the study's Markov-modulated workloads with peaks of 40, 120 and 200 req/s (scaled in
quick mode) against a 2,048 MB function, a single CPU server and a GPU server (g4dn.xlarge, the
study's T4); MobileNetV2 under ONNX Runtime vs PyTorch in the function (cold start and warm
latency); the cold start's five steps with the model downloaded from S3 (moto's server on
loopback), sequential and with parallel init; batch sizes 1 to 16 in one call, in the function
and on the GPU server (cost per image vs latency per call).

The GPU cases run on this machine's GPU when it has one and ONNX Runtime's CUDA build (the
``gpu`` extra); elsewhere they skip, saying which is missing. The profile of each result names
the provider that ran the model (``CUDAExecutionProvider``).

With ``--target=http --servebench-url=URL`` the three bursty workloads run against that endpoint
(serving MobileNetV2 on the raw JPEG body); the runtime, cold-start and batch cases deploy
functions of their own and are deselected.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import pytest
from study_004 import WORKLOADS, servers_queue, workload

from pytest_servebench import MMPP, ClosedLoop, parse_duration_s
from pytest_servebench.backends.base import Backend
from pytest_servebench.deployments import Deployments
from pytest_servebench.target import Target

# A module's targets by key (the ``deployed`` fixture).
Deployed = Callable[[str], Target]
STUDY = "004"
PEAKS = sorted(WORKLOADS)


def _workload(slo: dict[str, Any], peak: int) -> MMPP:
    length = WORKLOADS[peak][1]
    return workload(peak=peak, time_scale=parse_duration_s(slo["mmpp_duration"]) / length,
                    rate_scale=slo["mmpp_scale"], seed=peak)


@pytest.fixture(scope="module")
def deployed(servebench_deploy: Deployments) -> Deployed:
    """The study's targets by key: ``lambda``, ``server``, ``gpu`` (a GPU server; the case
    skips where there is none), a runtime (``onnx``, ``torch``), or ``http``."""

    def get(key: str) -> Target:
        def deploy(backend: Backend) -> Target:
            if key == "lambda":
                return backend.function("mobilenet_v2", memory_mb=2048,
                                        name="s004-mobilenet-2048")
            if key == "server":
                return backend.server("mobilenet_v2", platform="sagemaker",
                                      instance_type="ml.c5.2xlarge")
            if key == "gpu":  # skipped, saying why, where there is no GPU (GpuUnavailable)
                return backend.server("mobilenet_v2", platform="ec2",
                                      instance_type="g4dn.xlarge")
            runtime_target = {"onnx": "mobilenet_v2", "torch": "mobilenet_v2_torch"}[key]
            return backend.function(runtime_target, memory_mb=2048, name=f"s004-{key}")

        return servebench_deploy.get(key, deploy)

    return get


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.function.__name__ != "test_bursty_workload":
        return
    if metafunc.config.getoption("servebench_target") == "http":
        keys = [pytest.param("http", marks=pytest.mark.study_target("http"))]
    else:
        keys = [pytest.param("lambda", marks=pytest.mark.study_target("lambda")),
                pytest.param("server", marks=pytest.mark.study_target("sagemaker")),
                pytest.param("gpu", marks=pytest.mark.study_target("ec2"))]
    metafunc.parametrize("key", keys)


@pytest.mark.parametrize("peak", PEAKS, ids=[f"workload-{p}" for p in PEAKS])
def test_bursty_workload(servebench: Any, deployed: Deployed, findings: Any, slo: dict[str, Any],
                         image: bytes, key: str, peak: int) -> None:
    result = servebench.run(_workload(slo, peak), payload=image, target=deployed(key))
    findings.results[STUDY][(key, peak)] = result
    result.check(f"success_ratio >= {slo['bursty_success_min']}")


def test_finding_serverless_latency_stays_flat_across_bursts(findings: Any,
                                                             slo: dict[str, Any]) -> None:
    """Flat: no workload's p50 is decidedly (95% intervals) above ``burst_p50_spread_max``
    times another's."""
    runs = findings.need(STUDY, [("lambda", p) for p in PEAKS], "the Lambda bursts")
    spread = slo["burst_p50_spread_max"]
    assert max(r.p50.low for r in runs) <= spread * min(r.p50.high for r in runs), (
        f"median latency should not grow past {spread}x across the burst peaks: "
        + ", ".join(f"workload-{p}: {findings.shown(r.p50)}"
                    for p, r in zip(PEAKS, runs, strict=True)))


def test_finding_servers_queue_at_the_peak(servebench_backend: Any, findings: Any,
                                           slo: dict[str, Any]) -> None:
    """Servers queue under the bursts where the function stays flat: the single CPU server's
    p90 at the highest peak is decidedly (95% intervals) above ``server_queue_growth_min``
    times its p90 at the lowest, and above the function's at the highest
    (``study_004.servers_queue``; inconclusive intervals skip, saying so). Only where the
    functions get machines of their own (``Capabilities.elastic``: AWS, where ``[aws.quick]``
    runs the study's own peaks)."""
    if not servebench_backend.capabilities().elastic:
        pytest.skip("the study's server queued at 200 req/s because the cloud gave the functions "
                    "more cores than the server had; here the sandboxes and the server share "
                    f"this machine's cores ({servebench_backend.capabilities().limits}): run it "
                    "with --servebench-backend=aws against AWS")
    low, high = findings.need(STUDY, [("server", PEAKS[0]), ("server", PEAKS[-1])],
                              "the server's bursts")
    (fn_high,) = findings.need(STUDY, [("lambda", PEAKS[-1])], "the Lambda bursts")
    verdict, why = servers_queue(low.metric("p90"), high.metric("p90"), fn_high.metric("p90"),
                                 slo["server_queue_growth_min"])
    if verdict == "inconclusive":
        pytest.skip(f"inconclusive: {why}")
    assert verdict == "holds", f"the server did not queue at the peak where the function " \
                               f"stayed flat: {why}"


@pytest.mark.study_target("lambda")
@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_runtime_cold_and_warm(servebench: Any, servebench_backend: Any, deployed: Deployed,
                               findings: Any, slo: dict[str, Any], image: bytes,
                               runtime: str) -> None:
    fn = deployed(runtime)
    colds: list[float] = []
    for _ in range(slo["cold_repeats"]):
        servebench_backend.force_cold(fn)
        cold = servebench.run(ClosedLoop(concurrency=1, requests=1), payload=image, target=fn)
        cold.check("success_ratio >= 1", f"max < {slo['cold_start_max']}")
        colds.append(cold.p50.value)
    warm = servebench.run(ClosedLoop(concurrency=1, requests=40), payload=image, target=fn)
    warm.check(f"success_ratio >= {slo['success_ratio_min']}")
    findings.results[STUDY][("warm", runtime)] = warm
    findings.values[STUDY][("cold", runtime)] = statistics.median(colds)


def test_finding_onnx_runtime_starts_and_serves_faster(findings: Any) -> None:
    warm_onnx, warm_torch = findings.need(STUDY, [("warm", "onnx"), ("warm", "torch")],
                                          "the runtime comparison")
    cold = findings.values[STUDY]
    # Medians of cold_repeats cold starts (too few for an interval; 10x apart here).
    assert cold[("cold", "onnx")] < cold[("cold", "torch")], (
        f"median cold start: onnx {cold[('cold', 'onnx')]:.2f} s, "
        f"torch {cold[('cold', 'torch')]:.2f} s")
    assert warm_onnx.p50.high < warm_torch.p50.low, (
        f"warm p50: onnx {findings.shown(warm_onnx.p50)} is not decidedly below torch "
        f"{findings.shown(warm_torch.p50)}")
    assert warm_onnx.cost.usd_per_million < warm_torch.cost.usd_per_million, (
        warm_onnx.cost.usd_per_million, warm_torch.cost.usd_per_million)


@pytest.mark.study_target("lambda")
@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel-init"])
def test_cold_start_steps(servebench: Any, servebench_backend: Any, slo: dict[str, Any],
                          image: bytes, parallel: bool) -> None:
    if servebench_backend.name == "aws":
        pytest.skip("the study downloads the model from S3 at init; the aws backend ships "
                    "models in the function package only (model_from='s3' is not built there)")
    fn = servebench_backend.function("mobilenet_v2", memory_mb=2048, model_from="s3",
                                     parallel_init=parallel)
    servebench_backend.force_cold(fn)
    result = servebench.run(ClosedLoop(concurrency=1, requests=1), payload=image, target=fn)
    result.check("success_ratio >= 1")
    reply = result.records[0].reply
    phases = reply.extra["init_phases"]
    steps = ("sandbox_start_s", "runtime_start_s", "storage_import_s", "import_s",
             "model_load_s", "first_inference_s")
    assert all(phases[s] >= 0 for s in steps), phases
    in_handler = sum(phases[s] for s in ("storage_import_s", "import_s", "model_load_s",
                                         "first_inference_s"))
    assert in_handler <= reply.init_duration_s, (phases, reply.init_duration_s)
    if parallel:
        # Overlap happened: after the imports, less of the download was left to wait for
        # than the download took.
        assert phases["download_wait_s"] < phases["download_s"], phases
    else:
        assert phases["download_s"] > 0 and phases["parallel"] == 0


def _batch(servebench: Any, target: Target, image: bytes, batch: int,
           slo: dict[str, Any]) -> Any:
    import base64

    event = {"images_b64": [base64.b64encode(image).decode()] * batch}
    # Two warm-up calls: a GPU runtime tunes its kernels for each new batch shape.
    result = servebench.run(ClosedLoop(concurrency=1, requests=20, warmup_requests=2),
                            payload=event, target=target)
    result.check(f"success_ratio >= {slo['success_ratio_min']}")
    assert result.cost is not None
    return result


@pytest.mark.study_target("lambda")
def test_batch_sizes(servebench: Any, deployed: Deployed, findings: Any, slo: dict[str, Any],
                     image: bytes, batch: int) -> None:
    findings.results[STUDY][("batch", batch)] = _batch(servebench, deployed("lambda"), image,
                                                       batch, slo)


@pytest.mark.study_target("ec2")
def test_gpu_batch_sizes(servebench: Any, deployed: Deployed, findings: Any,
                         slo: dict[str, Any], image: bytes, batch: int) -> None:
    """Study 004's batching on the GPU server: one call carries ``batch`` images, decoded on
    the CPU and inferred in one pass on the GPU."""
    result = _batch(servebench, deployed("gpu"), image, batch, slo)
    assert result.target_profile.get("provider") == "CUDAExecutionProvider", (
        result.target_profile)
    findings.results[STUDY][("gpu-batch", batch)] = result


def _batching_trades_latency_for_cost(findings: Any, slo: dict[str, Any], key: str,
                                      what: str) -> None:
    sizes = slo["batch_sizes"]
    runs = findings.need(STUDY, [(key, b) for b in sizes], what)
    per_image = [r.cost.usd_per_request / b for r, b in zip(runs, sizes, strict=True)]
    # Cost per image falls with the batch (the per-call fee and overhead are shared) ...
    assert per_image[-1] < per_image[0], per_image
    # ... while each call takes decidedly longer (95% intervals).
    assert runs[-1].p50.low > runs[0].p50.high, (
        f"p50 per call: batch {sizes[-1]} {findings.shown(runs[-1].p50)} is not decidedly "
        f"above batch {sizes[0]} {findings.shown(runs[0].p50)}")


def test_finding_batching_trades_latency_for_cost(findings: Any, slo: dict[str, Any]) -> None:
    _batching_trades_latency_for_cost(findings, slo, "batch", "the batch sweep")


def test_finding_gpu_batching_trades_latency_for_cost(findings: Any,
                                                      slo: dict[str, Any]) -> None:
    _batching_trades_latency_for_cost(findings, slo, "gpu-batch", "the GPU batch sweep")


def test_finding_gpu_server_wins_at_low_load(findings: Any) -> None:
    """The study: a GPU server answers faster than the function at low load (workload-40)."""
    gpu, fn = findings.need(STUDY, [("gpu", PEAKS[0]), ("lambda", PEAKS[0])],
                            "the GPU server vs the function at the lowest peak")
    assert gpu.p50.high < fn.p50.low, (
        f"workload-{PEAKS[0]} p50: GPU server {findings.shown(gpu.p50)} is not decidedly "
        f"below the function's {findings.shown(fn.p50)}")
