"""Child processes that cannot outlive the run: own process group, killed with their parent,
bounded readiness waits that attach the log when they give up, and a sweep for leftovers.

Every process a run starts carries ``SERVEBENCH_RUN_ID`` and ``SERVEBENCH_OWNER`` (the backend
that started it) in its environment, the tags a sweeper looks for (testcontainers labels its
containers the same way for Ryuk).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

RUN_ID = uuid.uuid4().hex[:12]  # this process's runs; children of nested runs get their own
_PR_SET_PDEATHSIG = 1


class StartError(RuntimeError):
    """A process did not become ready; the message carries the tail of its log."""


_PORTS_HANDED_OUT: set[int] = set()
_PORTS_LOCK = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on loopback (bound and released; the caller binds it next).

    The kernel may hand a just-released port out again, so ports given to children that have
    not bound them yet are remembered here and never given twice, until ``release_port``: two
    sandboxes started at once must not share an address."""
    with _PORTS_LOCK:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = int(s.getsockname()[1])
            if port not in _PORTS_HANDED_OUT:
                _PORTS_HANDED_OUT.add(port)
                return port
    raise OSError("no free loopback port that is not already handed out")


def release_port(*ports: int) -> None:
    with _PORTS_LOCK:
        _PORTS_HANDED_OUT.difference_update(ports)


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux ``PR_SET_PDEATHSIG``):
    the last line of defence against orphans when the run itself is killed."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


_SETPRIV = shutil.which("setpriv")


def new_owner() -> str:
    return f"{RUN_ID}-{uuid.uuid4().hex[:8]}"


def spawn(argv: Sequence[str], *, env: Mapping[str, str], owner: str, log: Path | None = None,
          cwd: str | Path | None = None, stdout: int | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group) writing stdout and stderr to
    ``log`` (or to ``stdout``, e.g. ``subprocess.PIPE``); it dies with the calling thread.

    ``setpriv --pdeathsig`` (util-linux) sets the death signal without a ``preexec_fn``, which
    would force a slow fork of this whole process instead of ``vfork``. Call it from a thread
    that lives as long as the child should: the kernel ties the signal to the forking thread.
    """
    full_env = {**env, "SERVEBENCH_RUN_ID": RUN_ID, "SERVEBENCH_OWNER": owner}
    args = list(argv)
    preexec = None
    if _SETPRIV:
        args = [_SETPRIV, "--pdeathsig", "KILL", "--", *args]
    else:  # pragma: no cover - util-linux is everywhere we run
        preexec = die_with_parent
    with contextlib.ExitStack() as stack:
        out: IO[bytes] | int | None = stdout
        if log is not None:
            out = stack.enter_context(open(log, "ab"))
        return subprocess.Popen(
            args, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec,
        )


def kill_group(proc: subprocess.Popen[bytes], *, grace_s: float = 3.0) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace_s``, reap the leader."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace_s)
    if pgid is not None:
        # Kill the group even when the leader exited: children it left keep the group id.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace_s)


def log_tail(log: Path, *, lines: int = 40) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str,
               proc: subprocess.Popen[bytes] | None = None, log: Path | None = None,
               interval_s: float = 0.01,
               retry_on: tuple[type[BaseException], ...] = (OSError,)) -> float:
    """Poll ``check`` until it is true; return the seconds waited. Fails with the log attached
    when ``timeout_s`` passes or ``proc`` exits first."""
    started = time.perf_counter()
    deadline = started + timeout_s
    while True:
        try:
            if check():
                return time.perf_counter() - started
        except retry_on:
            pass
        if proc is not None and proc.poll() is not None:
            raise StartError(f"{what}: the process exited with status {proc.returncode}\n"
                             + (log_tail(log) if log else ""))
        if time.perf_counter() >= deadline:
            raise StartError(f"{what}: not ready after {timeout_s:g}s\n"
                             + (log_tail(log) if log else ""))
        time.sleep(interval_s)


def port_open(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=0.2):
        return True


def servebench_processes() -> dict[int, dict[str, str]]:
    """Live processes started by any servebench run (they carry ``SERVEBENCH_RUN_ID``), with
    their environments: what sweepers and leak checks look at."""
    found: dict[int, dict[str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or b"SERVEBENCH_RUN_ID=" not in raw:
            continue
        env = dict(item.decode("utf-8", "replace").partition("=")[::2]
                   for item in raw.split(b"\0") if b"=" in item)
        if "SERVEBENCH_RUN_ID" in env:
            found[int(entry.name)] = env
    return found


def tagged_processes(owner: str | None = None) -> list[int]:
    """Pids of live processes started by a backend (``owner``), or by any backend of this
    process's runs (None)."""
    key, value = ("SERVEBENCH_OWNER", owner) if owner else ("SERVEBENCH_RUN_ID", RUN_ID)
    return [pid for pid, env in servebench_processes().items() if env.get(key) == value]
