"""Nothing leaks: the run's containers go at close, when the owner is killed with SIGKILL (the
reaper), and leftovers of dead runs are swept by the next backend; a missing engine is a clear
error."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from pytest_servebench.backends.docker import engine

pytestmark = pytest.mark.docker


def _run_containers(client: Any, run_id: str) -> list[Any]:
    return engine.run_containers(client, run_id)


def _wait_empty(client: Any, run_id: str, timeout_s: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    left = _run_containers(client, run_id)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _run_containers(client, run_id)
    return left


def test_a_killed_owner_leaves_no_container(docker_engine: Any, tmp_path: Any) -> None:
    """``kill -9`` gives the backend no chance to clean up; the reaper does it."""
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import time
        from pytest_servebench.backends.docker import DockerBackend
        from pytest_servebench.fixture import Servebench
        from pytest_servebench import ClosedLoop
        from targets.payloads import jpeg
        b = DockerBackend()
        fn = b.function("mobilenet_v2", memory_mb=1024, name="orphan")
        r = Servebench(target=fn).run(ClosedLoop(concurrency=2, requests=2), payload=jpeg())
        assert r.success_ratio == 1.0, r.errors
        srv = b.server("mobilenet_v2", platform="ec2", instance_type="t2.small")
        open({str(ready)!r}, "w").write(b.owner)
        time.sleep(300)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
        assert time.monotonic() < deadline, "never deployed"
        time.sleep(0.1)
    run_id = ready.read_text()
    assert len(_run_containers(docker_engine, run_id)) == 3  # 2 sandboxes and the server
    proc.kill()
    proc.wait()
    assert _wait_empty(docker_engine, run_id) == []


def _sleeper(client: Any, image: str, labels: dict[str, str]) -> Any:
    return client.containers.run(image, ["python3", "-c", "import time; time.sleep(120)"],
                                 detach=True, labels=labels, network_mode="host")


def test_the_sweeper_removes_dead_runs_and_keeps_live_ones(docker_engine: Any,
                                                           docker_backend: Any) -> None:
    image = docker_backend.image("mobilenet_v2").tag
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
    dead = _sleeper(docker_engine, image, {
        engine.RUN_LABEL: "dead-run", engine.OWNER_PID_LABEL: dead_pid,
        engine.OWNER_START_LABEL: "1", engine.HOST_LABEL: engine.host_id()})
    live = _sleeper(docker_engine, image, engine.run_labels("live-run"))
    elsewhere = _sleeper(docker_engine, image, {
        engine.RUN_LABEL: "other-host-run", engine.OWNER_PID_LABEL: dead_pid,
        engine.HOST_LABEL: "another-machine/boot"})
    try:
        assert engine.sweep_dead_runs(docker_engine) >= 1
        ids = {c.id for c in engine.run_containers(docker_engine)}
        assert dead.id not in ids
        assert live.id in ids and elsewhere.id in ids
    finally:
        engine.remove_containers(docker_engine, [dead, live, elsewhere])


def test_close_removes_everything_and_stops_the_reaper(docker_engine: Any) -> None:
    from pytest_servebench import ClosedLoop
    from pytest_servebench.backends.docker import DockerBackend
    from pytest_servebench.fixture import Servebench
    from targets.payloads import jpeg

    backend = DockerBackend()
    reaper = backend._reaper
    assert reaper is not None and reaper.proc.poll() is None
    fn = backend.function("mobilenet_v2", memory_mb=1024, name="closing")
    assert Servebench(target=fn).run(ClosedLoop(concurrency=1, requests=1),
                                     payload=jpeg()).success_ratio == 1.0
    assert len(backend.containers()) == 1
    backend.close()
    assert _run_containers(docker_engine, backend.owner) == []
    assert reaper.proc.returncode == 0


def test_no_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(engine.EngineError, match=r"no Docker engine answers.*docker\.io"):
        engine.docker_client()


def test_labels_name_the_run_and_its_owner() -> None:
    labels = engine.run_labels("abc")
    assert labels[engine.RUN_LABEL] == "abc"
    assert labels[engine.OWNER_PID_LABEL] == str(os.getpid())
    assert engine._owner_alive(labels)
    assert not engine._owner_alive({**labels, engine.OWNER_START_LABEL: "0"})  # pid reused
