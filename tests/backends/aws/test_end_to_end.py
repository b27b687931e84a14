"""End to end, offline (issue #17): the aws backend deploys ``mobilenet_v2`` with boto3 against
the pair that stands in for AWS — moto's server for IAM, S3, CloudWatch Logs and tagging
(``AWS_ENDPOINT_URL``), the local Lambda platform for Lambda (``AWS_ENDPOINT_URL_LAMBDA``), both
on loopback and sharing one set of credentials — then measures it cold and warm through the load
engine, forces a cold start, prices the result and tears everything down.

It takes minutes (the real 62 MB package goes through the run's S3 bucket, and every cold start
imports numpy and ONNX Runtime from the unpacked zip, compiling them as Lambda does), hence its
name. ``-s`` prints what it measured: deploy times and the client's cost per invoke, the aws
backend's target against the local backend's on the same platform.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from pytest_servebench.backends.aws import AwsBackend
from pytest_servebench.backends.aws.packaging import build_zip
from pytest_servebench.backends.aws.sweep import find_leftovers
from pytest_servebench.functions.client import FunctionTarget

from .conftest import Moto
from .test_backend import _everything

MEMORY_SIZES_MB = (1024, 2048)


def _timed(fn: Callable[..., Any], sink: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - t)
    return wrapper


def _client_cost(bench: Any, target: FunctionTarget, payload: bytes, n: int
                 ) -> tuple[float, float]:
    """p50 of (client latency - the function's reported duration) over ``n`` warm invokes,
    and the client's CPU per invoke: the load engine runs in this thread, the platform in
    its own, so this thread's CPU time is the engine's and its client's."""
    from pytest_servebench import ClosedLoop

    cpu = time.thread_time()
    result = bench.run(ClosedLoop(concurrency=1, requests=n), payload=payload, target=target)
    cpu = time.thread_time() - cpu
    records = [r for r in result.records if not r.warmup]
    assert all(r.reply.ok and not r.reply.cold_start for r in records)
    return (statistics.median(r.latency_s - r.reply.duration_s for r in records),
            cpu / len(records))


def test_end_to_end_mobilenet_v2_at_two_memory_sizes_takes_minutes(
        aws_env: Moto, lambda_platform: Any) -> None:
    from pytest_servebench import ClosedLoop, Servebench, Settings
    from pytest_servebench.cost import price_result
    from pytest_servebench.pricebook import load_price_book
    from targets.payloads import jpeg

    t = time.perf_counter()
    package = build_zip("mobilenet_v2")  # built once per content, then from the cache
    build_s = time.perf_counter() - t
    assert package.needs_s3 and package.fits_zip  # over 50 MB: through the run's bucket
    image, book = jpeg(224, 224), load_price_book()
    backend = AwsBackend()
    lam = backend.client("lambda")
    assert lam.meta.endpoint_url == lambda_platform.endpoint_url
    uploads: list[float] = []
    s3 = backend.client("s3")
    s3.upload_file = _timed(s3.upload_file, uploads)
    bench = Servebench(settings=Settings(keep_records=True))
    measured: dict[str, Any] = {"build_s": round(build_s, 2)}
    try:
        functions: dict[int, FunctionTarget] = {}
        for memory_mb in MEMORY_SIZES_MB:
            t = time.perf_counter()
            fn = functions[memory_mb] = backend.function("mobilenet_v2", memory_mb=memory_mb)
            measured[f"deploy_{memory_mb}mb_s"] = {
                "total": round(time.perf_counter() - t, 2),
                "upload": round(sum(uploads), 2),
                "create_to_active": fn.profile["deploy_s"]}
            uploads.clear()
            conf = lam.get_function_configuration(FunctionName=fn.function)
            assert (conf["State"], conf["MemorySize"], conf["CodeSize"]) == (
                "Active", memory_mb, package.zipped_bytes)
        shas = {lam.get_function(FunctionName=f.function)["Configuration"]["CodeSha256"]
                for f in functions.values()}
        assert len(shas) == 1 and lambda_platform.platform.code.stored_bytes == (
            package.unzipped_bytes)  # one package, unpacked once for both

        for memory_mb, fn in functions.items():
            first = bench.run(ClosedLoop(concurrency=1, requests=4), payload=image, target=fn,
                              timeout=120)
            replies = [r.reply for r in first.records if not r.warmup]
            assert all(r.ok for r in replies), [r.detail for r in replies if not r.ok]
            cold, warm = replies[0], replies[1:]
            assert cold.cold_start and cold.init_duration_s is not None
            assert cold.billed_duration_s is not None and cold.duration_s is not None
            # Billed: the handler's duration plus the init phase, rounded up to 1 ms.
            assert cold.billed_duration_s >= cold.duration_s + cold.init_duration_s - 1e-3
            assert all(not r.cold_start and r.init_duration_s is None for r in warm)
            assert all(r.billed_duration_s is not None and r.duration_s is not None
                       and r.billed_duration_s >= r.duration_s - 1e-3 for r in warm)
            assert first.target_profile["memory_mb"] == memory_mb
            assert len(first.billed_durations_s) == 4
            cost = price_result(first, book)
            assert cost is not None and cost.usd_per_request > 0 and str(memory_mb) in cost.basis

            backend.force_cold(fn)
            again = bench.run(ClosedLoop(concurrency=1, requests=2), payload=image, target=fn,
                              timeout=120)
            after = [r.reply for r in again.records if not r.warmup]
            assert after[0].ok and after[0].cold_start and after[0].init_duration_s
            assert after[1].ok and not after[1].cold_start
            measured[f"cold_{memory_mb}mb"] = {"init_s": round(cold.init_duration_s, 2),
                                               "billed_s": round(cold.billed_duration_s, 2),
                                               "usd_per_request": cost.usd_per_request}

        # The client's cost per invoke: the aws backend's target against the one the local
        # backend builds for the same function on the same platform (interleaved blocks).
        fn = functions[MEMORY_SIZES_MB[-1]]
        local = FunctionTarget(lambda_platform.endpoint_url, fn.function, name="local",
                               profile=fn.profile, credentials=lambda_platform.credentials)
        costs: dict[str, list[tuple[float, float]]] = {"aws": [], "local": []}
        for _ in range(3):
            for label, target in (("aws", fn), ("local", local)):
                costs[label].append(_client_cost(bench, target, image, 20))
        for label, blocks in costs.items():
            measured[f"client_{label}"] = {
                "overhead_p50_ms": round(statistics.median(b[0] for b in blocks) * 1000, 2),
                "cpu_per_invoke_ms": round(statistics.median(b[1] for b in blocks) * 1000, 2)}
    finally:
        backend.close()
    print(f"\nend to end, measured: {measured}")

    assert find_leftovers(backend.client, run_id=backend.tags.run_id) == []
    assert _everything(backend) == {"function": [], "role": [], "log_group": [], "bucket": []}
    assert lam.list_functions()["Functions"] == []  # the platform's own listing
    deadline = time.monotonic() + 30
    while lambda_platform.platform.code.stored_bytes and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lambda_platform.platform.code.stored_bytes == 0  # the unpacked package went too


def test_provisioned_reserved_and_arm64_functions_through_the_pair(
        aws_env: Moto, lambda_platform: Any, tiny_package: Any) -> None:
    """The aws backend's other paths, with a tiny package (seconds, not minutes): a version
    published at create with provisioned concurrency waited READY and invoked warm, reserved
    concurrency, arm64, and a teardown that leaves nothing."""
    from pytest_servebench import ClosedLoop, Servebench

    with AwsBackend() as backend:
        fn = backend.function("text_rf", memory_mb=512, reserved_concurrency=2,
                              provisioned_concurrency=1, arch="arm64")
        assert fn.function.endswith(":1")  # the published version runs
        lam = backend.client("lambda")
        name = fn.function.split(":")[0]
        assert lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")[
            "Status"] == "READY"
        assert lam.get_function_concurrency(FunctionName=name)[
            "ReservedConcurrentExecutions"] == 2
        conf = lam.get_function_configuration(FunctionName=fn.function)
        assert (conf["Version"], conf["Architectures"]) == ("1", ["arm64"])
        result = Servebench().run(ClosedLoop(concurrency=1, requests=3), payload=b"{}",
                                  target=fn)
        replies = [r.reply for r in result.records if not r.warmup]
        assert all(r.ok and not r.cold_start for r in replies)  # provisioned: init ran ahead
        # Priced as arm64, measured on this machine: the profile says so (where they differ).
        import platform

        if platform.machine().lower() in ("x86_64", "amd64"):
            assert "runs it on this x86_64 machine" in fn.profile["arch_note"]
        with pytest.raises(ValueError, match="cannot be forced"):
            backend.force_cold(fn)  # $LATEST's change leaves version 1's sandboxes warm
        run_id = backend.tags.run_id
    assert find_leftovers(backend.client, run_id=run_id) == []
    assert lam.list_functions(FunctionVersion="ALL")["Functions"] == []
