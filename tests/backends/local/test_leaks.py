"""Nothing leaks from a failed start: a sandbox, a server or the object store that cannot start
leaves no process, temp folder, cgroup or handed-out port; and the sweep removes a dead run's
leftovers and never a live run's."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_servebench.backends.local import functions as local_functions
from pytest_servebench.backends.local import shaping
from pytest_servebench.backends.local.processes import (
    StartError,
    new_owner,
    ports_handed_out,
    process_token,
    tagged_processes,
)
from pytest_servebench.backends.local.shaping import Cgroup, Shape, Shaper
from pytest_servebench.backends.local.sweep import (
    folder_owner,
    kill_orphans,
    remove_dead_folders,
    sweep_dead_runs,
)

from .leftovers import Left, cgroups, dead_token, folders, settle

ROOT = Path(__file__).resolve().parents[3]
ME = os.getpid()


@pytest.fixture
def tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp directory of this test's own: every folder in it is the test's."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


@pytest.fixture
def fake_rie(tmp_path: Path) -> Iterator[Path]:
    """An 'emulator' that starts and waits (a shell script), for launches that need a live
    process but no real sandbox."""
    script = tmp_path / "rie.sh"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(0o755)
    yield script


def _left(owner: str, tmp_dir: Path) -> Left:
    return Left(tagged_processes(owner), folders(tmp_dir, ME), cgroups(ME))


def _spec(handler: str = "x.handler", **env: str) -> Any:
    from pytest_servebench.functions.sandbox import SandboxSpec

    return SandboxSpec(sandbox_id="leaktest", function="f", handler=handler, memory_mb=512,
                       timeout_s=5.0, environment=env)


# -- the names carry the owner ------------------------------------------------------------

def test_folders_and_cgroups_are_named_after_the_process_that_made_them(
        tmp_dir: Path, fake_rie: Path) -> None:
    launcher = local_functions.ProcessLauncher(owner=new_owner(), rie=fake_rie)
    sandbox = launcher.launch(_spec())
    try:
        assert sandbox.workdir.parent == tmp_dir
        assert folder_owner(sandbox.workdir.name) == process_token()
        assert sandbox.workdir.name.startswith(f"servebench-{process_token()}-sandbox-leaktest-")
        if sandbox.cgroup is not None:
            assert all(d.name.startswith(f"servebench-{process_token()}-")
                       for d in sandbox.cgroup.dirs.values())
    finally:
        sandbox.stop()
    assert not sandbox.workdir.exists()


# -- failed starts ------------------------------------------------------------------------

@pytest.mark.parametrize("step", ["spawn", "cgroup_add", "cgroup_make"])
def test_a_failed_launch_undoes_every_step(step: str, tmp_dir: Path, fake_rie: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    owner = new_owner()
    shaper = Shaper()
    if step != "spawn" and not shaper.can_shape:
        pytest.skip(f"this machine cannot shape: {shaper.reason}")

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OSError(f"{step} fails on purpose")

    if step == "spawn":
        monkeypatch.setattr(local_functions, "spawn", fail)
    elif step == "cgroup_add":
        monkeypatch.setattr(Cgroup, "add", fail)
    else:  # the second controller's limit cannot be written: the first group must go too
        real_write = Path.write_text

        def write_text(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
            if self.name == "memory.limit_in_bytes" or self.name == "memory.max":
                raise OSError("memory limit refused on purpose")
            return real_write(self, data, *args, **kwargs)

        monkeypatch.setattr(Path, "write_text", write_text)
    ports_before = ports_handed_out()
    launcher = local_functions.ProcessLauncher(owner=owner, shaper=shaper, rie=fake_rie)
    with pytest.raises(OSError, match="on purpose"):
        launcher.launch(_spec())
    assert ports_handed_out() <= ports_before
    assert settle(lambda: _left(owner, tmp_dir), timeout_s=10) == Left([], [], [])


def test_stop_is_idempotent_and_safe_from_two_threads(tmp_dir: Path, fake_rie: Path) -> None:
    owner = new_owner()
    sandbox = local_functions.ProcessLauncher(owner=owner, rie=fake_rie).launch(_spec())
    ports = set(sandbox.ports)
    assert ports <= ports_handed_out() and folders(tmp_dir, ME)
    threads = [threading.Thread(target=sandbox.stop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    sandbox.stop()
    assert not ports & ports_handed_out()
    assert _left(owner, tmp_dir) == Left([], [], [])


@pytest.fixture
def platform(tmp_dir: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A function platform whose sandboxes come from ``rie`` (the parameter) or the real
    emulator."""
    pytest.importorskip("awslambdaric", reason="the local Lambda platform needs [functions]")
    from pytest_servebench.functions.api import PlatformServer

    owner = new_owner()
    rie = getattr(request, "param", None)
    with PlatformServer(lambda: local_functions.ProcessLauncher(owner=owner, rie=rie),
                        reap_interval_s=0.1, start_timeout_s=10.0) as srv:
        srv.owner = owner  # type: ignore[attr-defined]
        yield srv
    assert settle(lambda: _left(owner, tmp_dir), timeout_s=10) == Left([], [], [])


def _invoke(srv: Any, name: str, **env: str) -> Any:
    from pytest_servebench.functions.platform import FunctionConfig

    srv.deploy(FunctionConfig(name=name,
                              handler="tests.backends.local.failing_handlers.handler",
                              environment={"PYTHONPATH": str(ROOT), **env}))
    assert srv.platform is not None
    return srv.call(srv.platform.invoke(name, b"{}"), timeout_s=60)


@pytest.mark.parametrize("fail_at", ["import", "exit"])
def test_a_sandbox_whose_handler_fails_at_init_leaves_nothing(platform: Any, tmp_dir: Path,
                                                               fail_at: str) -> None:
    """The runtime raises in its init phase, or exits there: the call is an error, the broken
    sandbox is retired, and its processes, folder, cgroup and ports go with it."""
    ports_before = ports_handed_out()
    invocation = _invoke(platform, f"fails-at-{fail_at}", FAIL_AT=fail_at)
    assert invocation.outcome.function_error == "Unhandled"
    assert settle(lambda: _left(platform.owner, tmp_dir), timeout_s=20) == Left([], [], [])
    assert ports_handed_out() <= ports_before


@pytest.fixture
def dead_emulator(tmp_path: Path) -> Path:
    script = tmp_path / "dead-rie.sh"
    script.write_text("#!/bin/sh\necho 'emulator: cannot start' >&2\nexit 7\n")
    script.chmod(0o755)
    return script


def test_a_sandbox_whose_emulator_exits_before_ready_leaves_nothing(
        tmp_dir: Path, dead_emulator: Path) -> None:
    """``wait_ready`` fails: the platform closes the sandbox (``_new_sandbox``), which stops
    it; nothing of it is left, and the caller gets the emulator's words."""
    pytest.importorskip("awslambdaric", reason="the local Lambda platform needs [functions]")
    from pytest_servebench.functions.api import PlatformServer

    owner = new_owner()
    ports_before = ports_handed_out()
    with PlatformServer(lambda: local_functions.ProcessLauncher(owner=owner, rie=dead_emulator),
                        start_timeout_s=10.0) as srv:
        with pytest.raises(StartError, match=r"exited with status 7(.|\n)*cannot start"):
            _invoke(srv, "never-ready")
        assert settle(lambda: _left(owner, tmp_dir), timeout_s=10) == Left([], [], [])
    assert ports_handed_out() <= ports_before


def test_a_server_that_cannot_start_leaves_nothing(tmp_dir: Path) -> None:
    pytest.importorskip("uvicorn", reason="servers need the [server] extra")
    from pytest_servebench.backends.local.server import ServerProcess

    owner = new_owner()
    ports_before = ports_handed_out()
    with pytest.raises(StartError, match="exited with status"):
        ServerProcess("text_rf", owner=owner, shape=Shape(0.5, 512), shaper=Shaper(),
                      environment={"SERVEBENCH_MODEL_PATH": "/nonexistent/model.joblib"},
                      start_timeout_s=60, label="leaktest")
    assert ports_handed_out() <= ports_before
    assert settle(lambda: _left(owner, tmp_dir), timeout_s=10) == Left([], [], [])


def test_a_server_whose_spawn_fails_leaves_nothing(tmp_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_servebench.backends.local import server

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OSError("spawn fails on purpose")

    monkeypatch.setattr(server, "spawn", fail)
    ports_before = ports_handed_out()
    with pytest.raises(OSError, match="on purpose"):
        server.ServerProcess("text_rf", owner=new_owner(), shape=None, shaper=Shaper())
    assert ports_handed_out() <= ports_before and folders(tmp_dir) == []


def test_an_object_store_that_cannot_start_leaves_nothing(tmp_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_servebench.backends.local import storage

    owner = new_owner()
    monkeypatch.setattr(storage, "_up", lambda url: False)  # never answers
    ports_before = ports_handed_out()
    with pytest.raises(StartError, match=r"not ready after 0\.5s"):
        storage.ObjectStore(owner=owner, start_timeout_s=0.5)
    assert ports_handed_out() <= ports_before
    assert settle(lambda: _left(owner, tmp_dir), timeout_s=10) == Left([], [], [])

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OSError("spawn fails on purpose")

    monkeypatch.setattr(storage, "spawn", fail)
    with pytest.raises(OSError, match="on purpose"):
        storage.ObjectStore(owner=owner)
    assert ports_handed_out() <= ports_before and folders(tmp_dir) == []


# -- the sweep ----------------------------------------------------------------------------

def test_the_sweep_removes_dead_runs_folders_only(tmp_dir: Path) -> None:
    dead = dead_token()
    keep = [f"servebench-{process_token()}-sandbox-live-x1",  # a live run (this process)
            f"servebench-{dead.rsplit('.', 1)[0]}.0badf00d-s3-x2",  # another machine/namespace
            "servebench-sandbox-0123456789abcdef-x3",  # an earlier version's: owner unknown
            "servebench-model", "servebench-machine.lock", "other-folder"]
    gone = [f"servebench-{dead}-sandbox-0123456789abcdef-y1", f"servebench-{dead}-s3-y2",
            f"servebench-{dead}-ec2-text_rf-y3"]
    for name in keep + gone:
        if name.endswith(".lock"):
            (tmp_dir / name).touch()
        else:
            (tmp_dir / name).mkdir()
            (tmp_dir / name / "log").write_text("x")
    assert remove_dead_folders(tmp_dir) == 3
    assert sorted(p.name for p in tmp_dir.iterdir()) == sorted(keep)
    assert remove_dead_folders(tmp_dir) == 0


def test_the_sweep_kills_processes_of_dead_owners_only(tmp_path: Path) -> None:
    def tagged(owner_process: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "SERVEBENCH_RUN_ID": "leaktest", "SERVEBENCH_OWNER": new_owner(),
               "SERVEBENCH_OWNER_PROCESS": owner_process}
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)

    orphan, live = tagged(dead_token()), tagged(process_token())
    try:
        assert kill_orphans(timeout_s=10) >= 1
        assert orphan.wait(10) == -9
        assert live.poll() is None
    finally:
        live.kill()
        orphan.kill()
        live.wait()


def test_the_sweep_removes_dead_runs_cgroups_and_what_is_left_in_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    shaper = Shaper()
    if not shaper.can_shape:
        pytest.skip(f"this machine cannot shape: {shaper.reason}")
    dead = dead_token()
    if shaper.version == 2:  # the dead run's parent group, as its Shaper made it
        parent = shaper.root / f"servebench-{dead}"
        parent.mkdir()
        (parent / "cgroup.subtree_control").write_text("+cpu +memory")
    monkeypatch.setattr(shaping, "process_token", lambda: dead)
    group = shaper.make(Shape(0.5, 256), "leaktest")
    monkeypatch.undo()
    mine = shaper.make(Shape(0.5, 256), "leaktest-live")
    assert group is not None and mine is not None
    left = subprocess.Popen(["sleep", "60"])  # what the dead run left in its group
    try:
        group.add(left.pid)
        assert shaping.sweep(shaper.root, timeout_s=10) >= 1
        assert left.wait(10) == -9
        assert not any(d.exists() for d in group.dirs.values())
        assert all(d.exists() for d in mine.dirs.values())  # a live run's group stays
    finally:
        left.kill()
        left.wait()
        mine.remove()
        group.remove()


def test_a_new_backend_sweeps_and_says_how_much(tmp_dir: Path) -> None:
    from pytest_servebench.backends.local import LocalBackend

    dead = dead_token()
    (tmp_dir / f"servebench-{dead}-sandbox-0123456789abcdef-z1").mkdir()
    with LocalBackend() as backend:
        assert backend.swept_leftovers.folders == 1
    assert folders(tmp_dir) == []
    assert not sweep_dead_runs(tmp_dir=tmp_dir).folders
