"""The main job's test files collect, and --target keeps only that target's cases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _collect(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "suites/", "--collect-only", "-q",
                          "-p", "no:cacheprovider", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return [line for line in out.stdout.splitlines() if "::" in line]


def test_every_study_has_a_suite_and_quick_sizes_parametrize() -> None:
    ids = _collect()
    for study in ("000", "001", "002", "003", "004"):
        assert any(f"suites/test_{study}_" in i for i in ids), study
    assert "suites/test_000_mobilenet_cost.py::test_concurrency_sweep[lambda-1024-concurrency=16]" \
        in ids
    full = _collect("--servebench-full")
    assert any("concurrency=8]" in i for i in full) and not any("concurrency=8]" in i for i in ids)


def test_target_keeps_that_targets_cases_and_the_findings() -> None:
    ids = _collect("--target=fargate")
    cases = [i for i in ids if "finding" not in i]
    assert cases and all("fargate" in i for i in cases), cases
    assert any("test_finding_more_cpu_starts_faster[fargate]" in i for i in ids)


def test_an_http_endpoint_gets_the_sweeps_and_the_bursts(tmp_path: Path) -> None:
    """``pytest suites/ --target=http --servebench-url=URL`` runs what a running endpoint can be
    asked (study 000's concurrency sweep, 003's payload and user sweeps, 004's bursts) against
    it, here our own app under ``servebench serve``; the cases that need a platform deployed
    by the backend (cold starts, prices) skip saying so."""
    import os
    import signal

    from pytest_servebench.backends.local.processes import free_port, wait_until
    from pytest_servebench.backends.local.server import _health

    ids = _collect("--target=http", "--servebench-url=http://127.0.0.1:9/predict")
    cases = [i for i in ids if "finding" not in i]
    assert cases and all("[http" in i for i in cases), cases
    assert {i.split("::")[0] for i in cases} == {"suites/test_000_mobilenet_cost.py",
                                                 "suites/test_003_lambda_vs_fargate.py",
                                                 "suites/test_004_serving_bursts.py"}
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "pytest_servebench.cli", "serve",
                               "mobilenet_v2", "--port", str(port), "--log-level", "warning"],
                              start_new_session=True)
    try:
        wait_until(lambda: _health(f"http://127.0.0.1:{port}/health"), timeout_s=120,
                   what="servebench serve", proc=server)
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "suites/test_000_mobilenet_cost.py",
             "suites/test_003_lambda_vs_fargate.py", "suites/test_004_serving_bursts.py", "-q",
             "-rs", "-p", "no:cacheprovider", "--target=http",
             f"--servebench-url=http://127.0.0.1:{port}/predict",
             f"--servebench-history={tmp_path / 'h.json'}"],
            cwd=ROOT, capture_output=True, text=True, timeout=600)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    assert out.returncode == 0, out.stdout[-3000:]
    for case in ("http-concurrency=16", "http-payload_bytes=2000000", "http-users=20",
                 "http-workload-200"):
        assert case in out.stdout, case
    assert "--target=http measures a running endpoint" in out.stdout
    summary = out.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and summary.startswith("13 passed"), summary


def _suites_conftest() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("suites_conftest_under_test",
                                                  ROOT / "suites" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_slo_toml_defaults_once_backends_override() -> None:
    """Every bound is written once under [defaults]; a backend section overrides what differs;
    a misspelt key in an override is a usage error, not an ignored bound."""
    import tomllib

    import pytest

    merge = _suites_conftest().merge_slo  # type: ignore[attr-defined]
    doc = tomllib.loads((ROOT / "suites" / "slo.toml").read_text())
    local = merge(doc, "local", "quick")
    assert local["tail"] == "p90" and local["concurrency"] == [1, 4, 16]
    assert local == merge(doc, "docker", "quick")  # no overrides
    aws = merge(doc, "aws", "quick")  # the cloud takes the studies' user counts and peaks
    assert aws["users"] == [50, 100, 200] and aws["mmpp_scale"] == 1.0
    assert {**aws, "users": local["users"], "mmpp_scale": local["mmpp_scale"]} == local
    assert merge(doc, "nosuch", "quick") == local  # no section: the defaults
    assert merge(doc, "local", "full")["tail"] == "p99"
    doc["docker"] = {"warm_tail_max": "3s", "quick": {"warm_requests": 80}}
    docker = merge(doc, "docker", "quick")
    assert docker["warm_tail_max"] == "3s" and docker["warm_requests"] == 80
    assert docker["cold_start_max"] == local["cold_start_max"]
    assert merge(doc, "docker", "full")["warm_requests"] == 400  # quick's override only
    doc["docker"] = {"quick": {"warm_reqests": 80}}
    with pytest.raises(pytest.UsageError, match=r"\[docker.quick\] sets warm_reqests"):
        merge(doc, "docker", "quick")
    doc["docker"] = {"warm_tail": "3s"}
    with pytest.raises(pytest.UsageError, match=r"\[docker\] sets warm_tail"):
        merge(doc, "docker", "quick")
