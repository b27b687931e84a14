"""Sandboxes as local processes: the Runtime Interface Emulator with the model provider's runtime
module (``targets.bootstrap``: the
``awslambdaric`` runtime client) as its runtime, each on its own loopback ports, in a cgroup shaped
like the function's memory size where the machine allows."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...functions.rie import find_rie
from ...functions.sandbox import SandboxSpec, keep_recent
from ...provider import get_provider
from ...waiting import wait_for_async
from .processes import StartError, free_port, kill_group, make_workdir, release_port, spawn
from .shaping import Cgroup, Shape, Shaper

_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "SERVEBENCH_CACHE", "SERVEBENCH_ORT_SPIN",
             "VIRTUAL_ENV", "LD_LIBRARY_PATH")


class _LineReader(asyncio.Protocol):
    def __init__(self, on_line: Callable[[str], None]) -> None:
        self.on_line = on_line
        self.buf = b""
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for raw in lines:
            self.on_line(raw.decode("utf-8", "replace").rstrip("\r"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.buf:
            self.on_line(self.buf.decode("utf-8", "replace"))
            self.buf = b""
        if not self.closed.done():
            self.closed.set_result(None)


class ProcessSandbox:
    def __init__(self, spec: SandboxSpec, proc: subprocess.Popen[bytes], ports: tuple[int, int],
                 workdir: Path, cgroup: Cgroup | None, log_keep: list[str]) -> None:
        self.spec, self.proc, self.workdir = spec, proc, workdir
        self.port, self.ports = ports[0], ports
        self.cgroup = cgroup
        self._recent = log_keep
        self._reader: _LineReader | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._stop_lock = threading.Lock()
        self._stopped = False

    @property
    def invoke_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def attach_log(self, on_line: Callable[[str], None]) -> None:
        keep = keep_recent(self._recent, on_line)
        loop = asyncio.get_running_loop()
        self._reader = _LineReader(keep)
        assert self.proc.stdout is not None
        reader = self._reader

        async def connect() -> None:
            assert self.proc.stdout is not None
            self._transport, _ = await loop.connect_read_pipe(lambda: reader, self.proc.stdout)

        self._connecting = loop.create_task(connect())

    async def wait_ready(self, timeout_s: float) -> None:
        async def answers() -> bool:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.close()
            return self.proc.poll() is None  # our emulator answers, not someone else

        def exited() -> str | None:
            if self.proc.poll() is None:
                return None
            return f"the emulator exited with status {self.proc.returncode}"

        async def last_words() -> str:
            if self.proc.poll() is not None:
                await self._drain_log(1.0)  # a dead emulator's last lines say why
            return "\n".join(self._recent[-40:])

        await wait_for_async(answers, timeout_s=timeout_s, interval_s=0.002,
                             what=f"sandbox {self.spec.sandbox_id}", retry_on=(OSError,),
                             dead=exited, logs=last_words)

    async def _drain_log(self, timeout_s: float) -> None:
        """Wait (bounded) until the log pipe has reached its end, every line delivered."""
        if self._reader is None:
            return
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(asyncio.shield(self._connecting), timeout_s)
            await asyncio.wait_for(asyncio.shield(self._reader.closed), timeout_s)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def peak_memory_mb(self) -> float | None:
        if self.cgroup is not None:
            return self.cgroup.peak_memory_mb()
        return _tree_peak_mb(self.proc.pid)

    def oom_killed(self) -> bool:
        return self.cgroup is not None and self.cgroup.oom_killed()

    def stop(self) -> None:
        """Kill the process group, release the ports, remove the cgroup and the workdir; safe
        to call twice, from two threads (a failed start's cleanup can meet the platform's
        close): the second call returns once the first has finished."""
        with self._stop_lock:
            if self._stopped:
                return
            try:
                kill_group(self.proc)
            finally:
                self._stopped = True
                if self._reader is None and self.proc.stdout is not None:
                    # Nobody reads the log (the platform never attached): close our end here.
                    # An attached reader's transport closes itself at EOF, in its loop (stop()
                    # runs in an executor thread; asyncio transports are not thread-safe).
                    self.proc.stdout.close()
                release_port(*self.ports)
                if self.cgroup is not None:
                    self.cgroup.remove()
                shutil.rmtree(self.workdir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        return {"pid": self.proc.pid, "port": self.port}


def _tree_peak_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a process and its children, for machines without
    cgroups: the runtime is the emulator's child."""
    total_kb = 0
    pids = [pid]
    # The emulator is a Go program: any of its threads may have forked the runtime.
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024 if total_kb else None


# The runtime (the provider's runtime module, e.g. targets/bootstrap.py on awslambdaric) is the
# platform's, as Lambda's runtime is Lambda's; run by its path, since an uploaded package may
# bring a package of the same name of its own.
_RUN_FILE = "import runpy, sys; runpy.run_path(sys.argv.pop(1), run_name='__main__')"


def _uploaded_code(task_root: str, env: dict[str, str], python: str) -> list[str]:
    """Run an uploaded package as Lambda does: its folder is the task root and the working
    directory, first on the module path (its modules and distributions win over the
    platform's), not written to (no bytecode caches); HOME and TMPDIR stay the sandbox's own
    folder. Returns the runtime's command, less the handler."""
    import importlib.util

    module = get_provider().runtime_module
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise StartError("the sandbox", f"the platform's runtime ({module}) is not installed")
    env["LAMBDA_TASK_ROOT"] = task_root
    env["PYTHONPATH"] = os.pathsep.join(p for p in (task_root, env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # -P: no working directory or script folder ahead of PYTHONPATH, so the task root's place
    # on the path is the one Lambda gives it.
    return [python, "-P", "-c", _RUN_FILE, spec.origin]


class ProcessLauncher:
    """Starts each sandbox as an emulator process (in its own process group, dying with us)."""

    runs_uploaded_code = True

    def __init__(self, *, owner: str, shaper: Shaper | None = None, rie: Path | None = None,
                 python: str = sys.executable) -> None:
        self.owner = owner
        self.rie = rie or find_rie()
        self.shaper = shaper or Shaper()
        self.python = python

    def describe(self, memory_mb: int) -> dict[str, Any]:
        return {"launcher": "process", "rie": str(self.rie),
                **self.shaper.describe(Shape.for_lambda(memory_mb))}

    def launch(self, spec: SandboxSpec) -> ProcessSandbox:
        """Start one sandbox. A step that fails (a port, the workdir, the cgroup, the spawn,
        moving the process into its cgroup) undoes the steps before it and re-raises."""
        shape = Shape.for_lambda(spec.memory_mb)
        with contextlib.ExitStack() as undo:
            port = free_port()
            undo.callback(release_port, port)
            api_port = free_port()
            undo.callback(release_port, api_port)
            workdir = make_workdir(f"sandbox-{spec.sandbox_id}")
            undo.callback(shutil.rmtree, workdir, ignore_errors=True)
            env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
            env.update(spec.environment)
            env.update({"HOME": str(workdir), "TMPDIR": str(workdir),
                        "LAMBDA_TASK_ROOT": str(workdir),
                        "SERVEBENCH_THREADS": str(shape.threads()),
                        "SERVEBENCH_SANDBOX_ID": spec.sandbox_id, "PYTHONUNBUFFERED": "1"})
            runtime: list[str] = [self.python, "-m", get_provider().runtime_module]
            cwd: str | Path = workdir
            if spec.task_root is not None:
                runtime, cwd = _uploaded_code(spec.task_root, env, self.python), spec.task_root
            argv = [str(self.rie), "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
                    "--runtime-api-address", f"127.0.0.1:{api_port}", "--log-level", "info",
                    *runtime, spec.handler]
            cgroup = self.shaper.make(shape, spec.sandbox_id) if self.shaper.can_shape else None
            if cgroup is not None:
                undo.callback(cgroup.remove)  # runs after the kill below: callbacks unwind
            proc = spawn(argv, env=env, owner=self.owner, cwd=cwd, stdout=subprocess.PIPE)
            undo.callback(_discard, proc)
            if cgroup is not None:
                cgroup.add(proc.pid)
            undo.pop_all()  # every step went well: the sandbox's stop() owns them now
        return ProcessSandbox(spec, proc, (port, api_port), workdir, cgroup, [])


def _discard(proc: subprocess.Popen[bytes]) -> None:
    kill_group(proc)
    if proc.stdout is not None:
        proc.stdout.close()
