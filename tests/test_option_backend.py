"""--target=lambda|ec2|fargate|sagemaker on the local backend, with --servebench-model,
--servebench-memory-mb, --servebench-instance-type, --servebench-task-size and
--servebench-backend; and nothing left running after the session, Ctrl-C included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_servebench.backends.local.processes import servebench_processes, token_pid

pytest.importorskip("onnxruntime", reason="the targets need the [targets] extra")
pytest.importorskip("awslambdaric", reason="the local Lambda platform needs [functions]")

TEST = """
from pytest_servebench import ClosedLoop

def test_run(servebench, servebench_target):
    r = servebench.run(ClosedLoop(concurrency=2, requests=12), payload={"text": "you are kind"})
    assert r.success_ratio == 1.0, r.errors
    print("PROFILE", sorted(servebench_target.describe().items()))
    print("CHILDPID", __import__("os").getpid())
"""


def _left_by(pid: int) -> list[int]:
    """Live processes started by process ``pid``'s run (other sessions may be running on this
    machine: only this run's own are judged)."""
    return [p for p, env in servebench_processes().items()
            if token_pid(env.get("SERVEBENCH_OWNER_PROCESS", "")) == pid]


def _settle(pid: int, timeout_s: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout_s
    left = _left_by(pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _left_by(pid)
    return left


def _child_pid(result: pytest.RunResult) -> int:
    return int(result.stdout.str().split("CHILDPID ", 1)[1].split()[0])


def test_lambda_target_serves_the_model_at_the_memory_size(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess("--target=lambda", "--servebench-model=text_rf",
                                           "--servebench-memory-mb=512", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*PROFILE*('memory_mb', 512)*('platform', 'lambda')*"
                                 "*('target', 'text_rf')*"])
    assert _settle(_child_pid(result)) == []


def test_ec2_and_fargate_targets_take_their_sizes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TEST)
    ec2 = pytester.runpytest_subprocess("--target=ec2", "--servebench-model=text_rf",
                                        "--servebench-instance-type=t3.medium", "-s")
    ec2.assert_outcomes(passed=1)
    ec2.stdout.fnmatch_lines(["*PROFILE*('instance_type', 't3.medium')*('platform', 'ec2')*"])
    fargate = pytester.runpytest_subprocess("--target=fargate", "--servebench-model=text_rf",
                                            "--servebench-task-size=0.5/1", "-s")
    fargate.assert_outcomes(passed=1)
    fargate.stdout.fnmatch_lines(["*PROFILE*('memory_gb', 1.0)*('platform', 'fargate')*"
                                  "*('vcpu', 0.5)*"])
    assert _settle(_child_pid(ec2)) == [] and _settle(_child_pid(fargate)) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--target=fargate", "--servebench-task-size=big"], "*expected VCPU/GB like 1/2*"),
    (["--target=ec2", "--servebench-instance-type=z9.huge"], "*no price for ec2 instance*"),
    (["--target=lambda", "--servebench-memory-mb=64"], "*128..10240 MB, not 64*"),
    (["--target=lambda", "--servebench-model=resnet9000"], "*resnet9000*"),
])
def test_bad_sizes_are_usage_errors(pytester: pytest.Pytester, args: list[str],
                                    message: str) -> None:
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess(*args)
    assert result.ret != 0
    result.stdout.fnmatch_lines([message]) if result.stdout.str().strip() else \
        result.stderr.fnmatch_lines([message])


def test_backend_choice_is_checked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess("--servebench-backend=mainframe")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid choice: 'mainframe'*"])



def _sigint_as_in_a_terminal() -> None:
    """A run started in the background (a CI shell's ``cmd &``) inherits SIGINT ignored, and a
    Python started so ignores Ctrl-C; a user's Ctrl-C reaches a foreground pytest, whose Python
    turns it into KeyboardInterrupt. The child gets the default back before it starts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def test_ctrl_c_leaves_nothing_running(pytester: pytest.Pytester, tmp_path: Path) -> None:
    marker = tmp_path / "deployed"
    pytester.makepyfile(f"""
import time
from pytest_servebench import ClosedLoop

def test_slow(servebench, servebench_backend):
    fn = servebench_backend.function("text_rf", memory_mb=1769, name="a")
    servebench.run(ClosedLoop(concurrency=3, requests=6), payload={{"text": "x"}}, target=fn)
    servebench_backend.server("text_rf", instance_type="t2.micro")
    open({str(marker)!r}, "w").close()
    time.sleep(120)
""")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             str(pytester.path)], cwd=pytester.path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ},
                                preexec_fn=_sigint_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
        assert time.monotonic() < deadline, "the test never deployed"
        time.sleep(0.1)
    assert len(_left_by(proc.pid)) >= 3  # sandboxes (emulator + runtime) and the server
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0].decode()
    assert "KeyboardInterrupt" in out
    assert _settle(proc.pid) == [], out[-3000:]
