"""Child processes that cannot outlive the run: own process group, killed with their parent,
bounded readiness waits that attach the log when they give up, and a sweep for leftovers.

Every process a run starts carries ``SERVEBENCH_RUN_ID``, ``SERVEBENCH_OWNER`` (the backend
that started it) and ``SERVEBENCH_OWNER_PROCESS`` (the process that started it, as a
``process_token``) in its environment, the tags a sweeper looks for (testcontainers labels its
containers the same way for Ryuk). Temp folders and cgroups carry the same token in their names.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO

from ...waiting import NotReady, wait_for

RUN_ID = uuid.uuid4().hex[:12]  # this process's runs; children of nested runs get their own
OWNER_PROCESS_ENV = "SERVEBENCH_OWNER_PROCESS"  # the process_token of the process that spawned
_PR_SET_PDEATHSIG = 1


# A process did not become ready; the message carries the tail of its log. Its timeout is a
# ``ReadinessTimeout``, a subclass.
StartError = NotReady


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


def ports_handed_out() -> frozenset[int]:
    """Ports ``free_port`` gave out and nobody released yet (what leak checks look at)."""
    with _PORTS_LOCK:
        return frozenset(_PORTS_HANDED_OUT)


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux ``PR_SET_PDEATHSIG``):
    the last line of defence against orphans when the run itself is killed."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    # A second SIGTERM is not held up by our cleanup: it kills at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt(f"terminated by signal {signum} (SIGTERM)")


_sigterm_users = 0
_SIGTERM_LOCK = threading.Lock()


def interrupt_on_sigterm() -> bool:
    """Make SIGTERM end this process the way Ctrl-C does, with ``KeyboardInterrupt`` in the
    main thread, so that cleanup runs (pytest closes the backend on its Ctrl-C path too);
    with the default action the process would die with its temp folders and cgroups left for
    the next run's sweep. Only from the main thread and only over the default action (a
    handler someone installed stays). Pair each True with ``restore_sigterm()``."""
    global _sigterm_users
    if threading.current_thread() is not threading.main_thread():
        return False
    with _SIGTERM_LOCK:
        if _sigterm_users == 0:
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                return False
            signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        _sigterm_users += 1
        return True


def restore_sigterm() -> None:
    """The last user gone, SIGTERM gets its default action back (unless replaced since)."""
    global _sigterm_users
    with _SIGTERM_LOCK:
        _sigterm_users = max(0, _sigterm_users - 1)
        if (_sigterm_users == 0 and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is _sigterm_as_interrupt):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


_SETPRIV = shutil.which("setpriv")


def new_owner() -> str:
    return f"{RUN_ID}-{uuid.uuid4().hex[:8]}"


def start_ticks(pid: int) -> str:
    """A process's start time in clock ticks since boot (tells a pid from its reuse); "" when
    there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _machine() -> str:
    """This boot of this machine as seen from this pid namespace: a pid and its start ticks
    only name one process within it (a container sharing /tmp sees other pids)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "?"
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = "?"
    return hashlib.sha1(f"{boot}/{pidns}".encode()).hexdigest()[:8]


_MACHINE = _machine()
_TOKEN = re.compile(r"^(\d+)\.(\d+)\.([0-9a-f]{8})$")
_tokens: dict[int, str] = {}


def process_token() -> str:
    """``<pid>.<start ticks>.<machine>`` of this process: it names the process for as long as it
    lives and never another one, though its pid be reused. Temp folders, cgroups and the
    environment of child processes carry it, so a sweep tells leftovers of dead runs from a
    live run's resources."""
    pid = os.getpid()
    token = _tokens.get(pid)  # keyed by pid: a forked child computes its own
    if token is None:
        token = _tokens[pid] = f"{pid}.{start_ticks(pid)}.{_MACHINE}"
    return token


def token_pid(token: str) -> int | None:
    """The pid in a ``process_token``, or None when ``token`` is not one."""
    m = _TOKEN.match(token)
    return int(m.group(1)) if m else None


def owner_gone(token: str) -> bool:
    """True only when the process ``token`` names has surely exited: a token of another
    machine, boot or pid namespace, or not a token at all, is not ours to judge (False)."""
    m = _TOKEN.match(token)
    if m is None or m.group(3) != _MACHINE:
        return False
    return start_ticks(int(m.group(1))) != m.group(2)


def make_workdir(kind: str) -> Path:
    """A new temp folder ``servebench-<process token>-<kind>-XXXXXXXX`` (see ``sweep``)."""
    return Path(tempfile.mkdtemp(prefix=f"servebench-{process_token()}-{kind}-"))


def spawn(argv: Sequence[str], *, env: Mapping[str, str], owner: str, log: Path | None = None,
          cwd: str | Path | None = None, stdout: int | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group) writing stdout and stderr to
    ``log`` (or to ``stdout``, e.g. ``subprocess.PIPE``); it dies with the calling thread.

    ``setpriv --pdeathsig`` (util-linux) sets the death signal without a ``preexec_fn``, which
    would force a slow fork of this whole process instead of ``vfork``. Call it from a thread
    that lives as long as the child should: the kernel ties the signal to the forking thread.
    """
    full_env = {**env, "SERVEBENCH_RUN_ID": RUN_ID, "SERVEBENCH_OWNER": owner,
                OWNER_PROCESS_ENV: process_token()}
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
    when ``timeout_s`` passes or ``proc`` exits first (``waiting.wait_for`` for a process)."""

    def exited() -> str | None:
        if proc is None or proc.poll() is None:
            return None
        return f"the process exited with status {proc.returncode}"

    return wait_for(check, timeout_s=timeout_s, what=what, interval_s=interval_s,
                    retry_on=retry_on, dead=exited,
                    logs=(lambda: log_tail(log)) if log is not None else None)


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
