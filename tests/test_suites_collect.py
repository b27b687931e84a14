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


def test_an_http_endpoint_gets_the_sweep(tmp_path: Path) -> None:
    """``pytest suites/ --target=http --servebench-url=URL`` runs study 000's sweep against a
    running endpoint (here our own app under ``servebench serve``)."""
    import os
    import signal

    from pytest_servebench.backends.local.processes import free_port, wait_until
    from pytest_servebench.backends.local.server import _health

    ids = _collect("--target=http", "--servebench-url=http://127.0.0.1:9/predict")
    cases = [i for i in ids if "finding" not in i]
    assert cases and all("[http-" in i for i in cases), cases
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "pytest_servebench.cli", "serve",
                               "mobilenet_v2", "--port", str(port), "--log-level", "warning"],
                              start_new_session=True)
    try:
        wait_until(lambda: _health(f"http://127.0.0.1:{port}/health"), timeout_s=120,
                   what="servebench serve", proc=server)
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "suites/test_000_mobilenet_cost.py", "-q",
             "-p", "no:cacheprovider", "--target=http",
             f"--servebench-url=http://127.0.0.1:{port}/predict",
             f"--servebench-history={tmp_path / 'h.json'}"],
            cwd=ROOT, capture_output=True, text=True, timeout=600)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "3 passed" in out.stdout and "http-concurrency=16" in out.stdout
