"""Child processes: own group, tagged, killed with their tree, bounded waits with the log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_servebench.backends.local.processes import (
    StartError,
    free_port,
    kill_group,
    new_owner,
    port_open,
    spawn,
    tagged_processes,
    wait_until,
)

PARENT_AND_CHILD = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def _wait_gone(pids: list[int], timeout_s: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout_s
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists()
                 and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        time.sleep(0.05)
    return alive


def test_kill_group_takes_the_children_too(tmp_path: Path) -> None:
    owner = new_owner()
    proc = spawn([sys.executable, "-c", PARENT_AND_CHILD], env=dict(os.environ), owner=owner,
                 log=tmp_path / "log")
    wait_until(lambda: "ready" in (tmp_path / "log").read_text(), timeout_s=20, what="child")
    pids = tagged_processes(owner)
    assert len(pids) == 2  # the parent and the grandchild both carry the tag
    kill_group(proc)
    assert _wait_gone(pids) == []
    assert tagged_processes(owner) == []


def test_children_die_with_the_process_that_spawned_them(tmp_path: Path) -> None:
    """SIGKILL the owner (no cleanup can run): the kernel's parent-death signal takes the
    children."""
    owner = new_owner()
    script = (
        "import os, sys, time\n"
        "from pytest_servebench.backends.local.processes import spawn\n"
        f"spawn([sys.executable, '-c', 'import time; time.sleep(60)'], env=dict(os.environ), "
        f"owner={owner!r})\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert runner.stdout is not None and runner.stdout.readline().strip() == b"ready"
    # the child is tagged once it has exec'd (its /proc environ is then readable): a busy
    # machine can take a moment (CI once read none right after "ready")
    wait_until(lambda: bool(tagged_processes(owner)), timeout_s=20, what="the tagged child")
    children = tagged_processes(owner)
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
    assert _wait_gone(children) == []


def test_wait_until_gives_up_with_the_log(tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = spawn([sys.executable, "-c", "print('booting'); import time; time.sleep(30)"],
                 env=dict(os.environ), owner=new_owner(), log=log)
    try:
        with pytest.raises(StartError, match=r"not ready after 0\.5s(.|\n)*booting"):
            wait_until(lambda: port_open("127.0.0.1", free_port()), timeout_s=0.5,
                       what="nothing listens", proc=proc, log=log)
    finally:
        kill_group(proc)


def test_wait_until_notices_an_exit_at_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = spawn([sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"],
                 env=dict(os.environ), owner=new_owner(), log=log)
    started = time.monotonic()
    with pytest.raises(StartError, match=r"exited with status 3(.|\n)*bad config"):
        wait_until(lambda: False, timeout_s=30, what="server", proc=proc, log=log)
    assert time.monotonic() - started < 10


def test_free_ports_are_never_handed_out_twice_until_released() -> None:
    from pytest_servebench.backends.local.processes import release_port

    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == 200
    release_port(*ports)
