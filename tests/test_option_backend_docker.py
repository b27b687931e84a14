"""--servebench-backend=docker and --servebench-base-image: the same --target options run in
containers; no container is left after the session, Ctrl-C included; a missing engine or base
image is a clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("testcontainers", reason="the container backend needs the [docker] extra")
pytest.importorskip("awslambdaric", reason="the images hold the [functions] runtime")

pytestmark = pytest.mark.docker

TEST = """
from pytest_servebench import ClosedLoop
from targets.payloads import jpeg

def test_run(servebench, servebench_target):
    r = servebench.run(ClosedLoop(concurrency=2, requests=8), payload=jpeg())
    assert r.success_ratio == 1.0, r.errors
    print("PROFILE", sorted(servebench_target.describe().items()))
"""


def _foreign_containers(client: Any) -> list[Any]:
    """servebench containers of runs other than this process's own."""
    from pytest_servebench.backends.docker.engine import OWNER_PID_LABEL, run_containers

    return [c for c in run_containers(client) if c.labels.get(OWNER_PID_LABEL) != str(os.getpid())]


def _settle(client: Any, timeout_s: float = 20) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    left = _foreign_containers(client)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _foreign_containers(client)
    return left


def test_lambda_and_ec2_targets_run_in_containers(pytester: pytest.Pytester,
                                                  docker_engine: Any) -> None:
    pytester.makepyfile(TEST)
    lam = pytester.runpytest_subprocess("--servebench-backend=docker", "--target=lambda",
                                        "--servebench-memory-mb=512", "-s")
    lam.assert_outcomes(passed=1)
    lam.stdout.fnmatch_lines(["*PROFILE*('backend', 'docker')*('memory_mb', 512)*"
                              "*('platform', 'lambda')*('shaped', True)*"])
    ec2 = pytester.runpytest_subprocess("--servebench-backend=docker", "--target=ec2",
                                        "--servebench-instance-type=t2.small", "-s")
    ec2.assert_outcomes(passed=1)
    ec2.stdout.fnmatch_lines(["*PROFILE*('backend', 'docker')*('instance_type', 't2.small')*"
                              "*('vcpu', 1.0)*"])
    assert _settle(docker_engine) == []


def test_a_base_image_that_cannot_be_had_is_reported(pytester: pytest.Pytester,
                                                     docker_engine: Any) -> None:
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess("--servebench-backend=docker", "--target=lambda",
                                           "--servebench-base-image=servebench/no-such:0")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*servebench/no-such:0 is not on this machine*"])
    assert _settle(docker_engine) == []


def test_no_engine_is_a_usage_error(pytester: pytest.Pytester,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(TEST)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = pytester.runpytest_subprocess("--servebench-backend=docker", "--target=lambda")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*--servebench-backend=docker: no Docker engine answers*"])



def _sigint_as_in_a_terminal() -> None:
    """A run started in the background (a CI shell's ``cmd &``) inherits SIGINT ignored, and a
    Python started so ignores Ctrl-C; a user's Ctrl-C reaches a foreground pytest, whose Python
    turns it into KeyboardInterrupt. The child gets the default back before it starts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def test_ctrl_c_leaves_no_container(pytester: pytest.Pytester, tmp_path: Path,
                                    docker_engine: Any) -> None:
    marker = tmp_path / "deployed"
    pytester.makepyfile(f"""
import time
from pytest_servebench import ClosedLoop
from targets.payloads import jpeg

def test_slow(servebench, servebench_backend):
    fn = servebench_backend.function("mobilenet_v2", memory_mb=1769, name="a")
    servebench.run(ClosedLoop(concurrency=2, requests=4), payload=jpeg(), target=fn)
    servebench_backend.server("mobilenet_v2", instance_type="t2.micro")
    open({str(marker)!r}, "w").close()
    time.sleep(120)
""")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "--servebench-backend=docker", str(pytester.path)],
                            cwd=pytester.path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ},
                                preexec_fn=_sigint_as_in_a_terminal)
    deadline = time.monotonic() + 180
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
        assert time.monotonic() < deadline, "the test never deployed"
        time.sleep(0.1)
    assert len(_foreign_containers(docker_engine)) >= 3  # two sandboxes and the server
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=90)[0].decode()
    assert "KeyboardInterrupt" in out
    assert _settle(docker_engine) == [], out[-3000:]
