"""A run that is stopped from outside leaves nothing: a pytest session holding sandboxes, a
server and the object store is sent SIGINT, SIGTERM or SIGKILL, or loses an xdist worker to
SIGKILL. Ctrl-C and SIGTERM clean up on their way out; after SIGKILL the children die with the
run (``PR_SET_PDEATHSIG``) and the next backend's sweep removes its folders and cgroups.

Each run gets a temp directory of its own and is found by its own tags (its pid in folder
and cgroup names, its owner in the environment of its processes), never by machine-wide
counts: other sessions may be running on this machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from .leftovers import Left, left_by, settle

pytest.importorskip("awslambdaric", reason="the local Lambda platform needs [functions]")
pytest.importorskip("moto", reason="the object store needs the [aws] extra")
pytest.importorskip("uvicorn", reason="servers need the [server] extra")

ROOT = Path(__file__).resolve().parents[3]

HOLD = """
import json, os, time
from pathlib import Path

def test_hold{suffix}(servebench_backend):
    be = servebench_backend
    be.function("text_rf", memory_mb=512, name="held{suffix}", provisioned_concurrency=2,
                handler="tests.functions.handlers.echo", environment={{"PYTHONPATH": {root!r}}})
    be.object_store
    be.server("text_rf", platform="fargate", vcpu=0.25, memory_gb=0.5)
    Path({marker!r}).write_text(json.dumps({{"pid": os.getpid(), "owner": be.owner}}))
    time.sleep({hold_s})
"""

# Emulates a terminal: a session started in the background may inherit SIGINT ignored.
MAIN = ("import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.exit(pytest.main(sys.argv[1:]))")


def _start(tmp_path: Path, files: dict[str, str], *args: str) -> tuple[subprocess.Popen[str],
                                                                       Path]:
    run_tmp = tmp_path / "tmp"
    run_tmp.mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {**os.environ, "TMPDIR": str(run_tmp)}
    proc = subprocess.Popen([sys.executable, "-c", MAIN, "-p", "no:cacheprovider", "-q", "-s",
                             *args, str(tmp_path)], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, run_tmp


def _wait_for(marker: Path, proc: subprocess.Popen[str], *, timeout_s: float = 240) -> Any:
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail("the run ended before it deployed:\n" + _output(proc))
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the run did not deploy in time:\n" + _output(proc))
        time.sleep(0.1)
    time.sleep(0.05)  # the marker is written in one go; let the writer close it
    return json.loads(marker.read_text())


def _output(proc: subprocess.Popen[str], timeout_s: float = 60) -> str:
    try:
        out = proc.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
    return out[-4000:]


def _sweep_with_a_new_backend(run_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from pytest_servebench.backends.local import LocalBackend

    monkeypatch.setattr(tempfile, "tempdir", str(run_tmp))
    backend = LocalBackend()
    backend.close()
    monkeypatch.undo()
    return backend.swept_leftovers


def _check_deployed(held: Left) -> None:
    # Two sandboxes (emulator + runtime each), the server, moto; their folders and cgroups.
    assert len(held.processes) >= 6, held
    assert len(held.folders) == 4, held
    assert held.cgroups or not Path("/sys/fs/cgroup/memory/cgroup.procs").exists(), held


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_and_sigterm_clean_up_on_the_way_out(sig: signal.Signals, tmp_path: Path) -> None:
    marker = tmp_path / "deployed.json"
    proc, run_tmp = _start(tmp_path, {"test_hold.py": HOLD.format(
        suffix="", root=str(ROOT), marker=str(marker), hold_s=300)})
    run = _wait_for(marker, proc)
    pid, owner = run["pid"], run["owner"]
    assert pid == proc.pid
    _check_deployed(left_by(pid, run_tmp, owner=owner))
    proc.send_signal(sig)
    out = _output(proc)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "KeyboardInterrupt" in out
    # Nothing left, without any sweep: the run's own close() removed it all.
    assert settle(lambda: left_by(pid, run_tmp, owner=owner), timeout_s=10) == Left(
        [], [], []), out


def test_after_sigkill_children_die_and_the_next_run_sweeps_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "deployed.json"
    proc, run_tmp = _start(tmp_path, {"test_hold.py": HOLD.format(
        suffix="", root=str(ROOT), marker=str(marker), hold_s=300)})
    run = _wait_for(marker, proc)
    pid, owner = run["pid"], run["owner"]
    held = left_by(pid, run_tmp, owner=owner)
    _check_deployed(held)
    proc.send_signal(signal.SIGKILL)
    _output(proc)
    assert proc.returncode == -signal.SIGKILL
    # The children go with their parent; folders and cgroups cannot clean themselves up.
    assert settle(lambda: _processes_only(left_by(pid, run_tmp, owner=owner)),
                  timeout_s=10) == Left([], [], [])
    assert left_by(pid, run_tmp, owner=owner).folders == held.folders
    swept = _sweep_with_a_new_backend(run_tmp, monkeypatch)
    assert swept.folders == len(held.folders)
    # Not a count of cgroups: another session's backend may have swept them first.
    assert left_by(pid, run_tmp, owner=owner) == Left([], [], [])


def _processes_only(left: Left) -> Left:
    return Left(left.processes, [], [])


def test_an_xdist_worker_killed_mid_run_leaves_nothing_after_the_session_and_a_sweep(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xdist")
    doomed, survivor = tmp_path / "a.json", tmp_path / "b.json"
    # The survivor holds its resources until the other worker is dead, then ends in order.
    wait_for_the_kill = f"""
    deadline = time.monotonic() + 240
    while Path({str(doomed)!r}).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
"""
    files = {"test_a.py": HOLD.format(suffix="_a", root=str(ROOT), marker=str(doomed),
                                      hold_s=300),
             "test_b.py": HOLD.format(suffix="_b", root=str(ROOT), marker=str(survivor),
                                      hold_s=0) + wait_for_the_kill}
    # No replacement worker: under --dist=loadgroup (which the plugin picks for -n) xdist
    # 3.8 hangs at the end of a session whose crashed worker was replaced (pytest-xdist#1323).
    proc, run_tmp = _start(tmp_path, files, "-n", "2", "--max-worker-restart=0")
    a = _wait_for(doomed, proc)
    b = _wait_for(survivor, proc)
    assert len({a["pid"], b["pid"], proc.pid}) == 3  # two workers, each a session of its own
    held_a = left_by(a["pid"], run_tmp, owner=a["owner"])
    _check_deployed(held_a)
    os.kill(a["pid"], signal.SIGKILL)
    doomed.unlink()
    out = _output(proc, timeout_s=180)
    assert "1 failed, 1 passed" in out and "crashed" in out, out
    # The surviving worker's session ended in order: nothing of it left, no sweep needed.
    assert settle(lambda: left_by(b["pid"], run_tmp, owner=b["owner"]),
                  timeout_s=10) == Left([], [], []), out
    # The killed worker's children died with it; its folders waited for the next sweep.
    assert settle(lambda: _processes_only(left_by(a["pid"], run_tmp, owner=a["owner"])),
                  timeout_s=10) == Left([], [], []), out
    swept = _sweep_with_a_new_backend(run_tmp, monkeypatch)
    assert swept.folders == len(held_a.folders)
    assert left_by(a["pid"], run_tmp, owner=a["owner"]) == Left([], [], []), out
