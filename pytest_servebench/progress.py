"""Live progress of a run: what the engine reports a few times a second, and the line that
shows it.

The engine never calls anything per request for this: a sampler task in its event loop reads
the run's counters every ``interval_s`` and hands a ``Snapshot`` to a callback. ``ProgressLine``
turns snapshots into one updating line on a terminal (``\\r``), or into a plain line every few
seconds when the output is a file or a pipe; runs shorter than ``after_s`` show nothing.

>>> lines = []
>>> show = ProgressLine(lines.append, tty=False, label="t.py::test_a", after_s=2, every_s=5)
>>> show(Snapshot(elapsed_s=1.0, sent=10, done=9, errors=0, p50_s=0.012))  # too early
>>> show(Snapshot(elapsed_s=2.5, sent=30, done=28, errors=1, p50_s=0.012))
>>> show(Snapshot(elapsed_s=3.0, sent=40, done=38, errors=1, p50_s=0.012))  # 5 s not up
>>> lines
['t.py::test_a  2.5s  sent 30  done 28  errors 1  p50 12ms']
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .metrics import format_value

# How often the engine samples its counters, and how long a run goes before it shows.
INTERVAL_S = 0.25
AFTER_S = 2.0
# Without a terminal, a plain line this often.
PLAIN_EVERY_S = 5.0


@dataclass(frozen=True)
class Snapshot:
    """A run so far: seconds since it began, requests sent and finished, failures among the
    finished, and the median latency of the successful ones (NaN before the first)."""

    elapsed_s: float
    sent: int
    done: int
    errors: int
    p50_s: float
    final: bool = False

    def text(self) -> str:
        p50 = "-" if math.isnan(self.p50_s) else format_value("latency", self.p50_s)
        return (f"{self.elapsed_s:.1f}s  sent {self.sent}  done {self.done}  "
                f"errors {self.errors}  p50 {p50}")


ProgressCallback = Callable[[Snapshot], None]


class ProgressLine:
    """Shows snapshots through ``write``: on a terminal (``tty``) each call rewrites one line
    (``write`` gets the text to put after a carriage return; ``clear`` erases it at the end);
    otherwise a plain line at most every ``every_s`` seconds. Nothing before ``after_s``."""

    def __init__(self, write: Callable[[str], None], *, tty: bool, label: str = "",
                 after_s: float = AFTER_S, every_s: float = PLAIN_EVERY_S,
                 clear: Callable[[], None] | None = None) -> None:
        self._write = write
        self._tty = tty
        self._label = label
        self._after_s = after_s
        self._every_s = every_s
        self._clear = clear
        self._last_s = -math.inf
        self.shown = False

    def __call__(self, snap: Snapshot) -> None:
        self.show(snap.elapsed_s, snap.text(), final=snap.final)

    def show(self, elapsed_s: float, text: str, *, final: bool = False) -> None:
        """One update: ``text`` after the label, ``elapsed_s`` into the work."""
        if final:
            if self.shown and self._tty and self._clear is not None:
                self._clear()
            return
        if elapsed_s < self._after_s:
            return
        if not self._tty and elapsed_s - self._last_s < self._every_s:
            return
        self._last_s = elapsed_s
        self.shown = True
        self._write(f"{self._label}  {text}" if self._label else text)


# Where long steps outside a run (a model build, an image build) show that they are working:
# a factory of progress lines by label, set by the plugin for the session's terminal (None: they
# show nothing, as under -q, in an xdist worker or outside pytest).
_status_lines: Callable[[str], ProgressLine] | None = None


def set_status_lines(factory: Callable[[str], ProgressLine] | None) -> None:
    global _status_lines
    _status_lines = factory


@contextlib.contextmanager
def working(what: str, *, tick_s: float = INTERVAL_S) -> Iterator[None]:
    """Show ``what`` and the seconds it has taken while the block runs, once it has taken
    ``AFTER_S`` (a cached model shows nothing). A thread ticks: the block itself may hold the
    interpreter in a long call (a torch export).

    >>> shown = []
    >>> set_status_lines(lambda label: ProgressLine(shown.append, tty=False, label=label,
    ...                                             after_s=0.0, every_s=0.0))
    >>> with working("building model m", tick_s=0.01):
    ...     time.sleep(0.05)
    >>> set_status_lines(None)
    >>> shown[0].startswith("building model m  0.0") and shown[-1].endswith("s")
    True
    """
    factory = _status_lines
    if factory is None:
        yield
        return
    line = factory(what)
    started = time.monotonic()
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(tick_s):
            elapsed = time.monotonic() - started
            try:
                line.show(elapsed, f"{elapsed:.1f}s")
            except Exception:  # a broken display must not break the build
                return

    ticker = threading.Thread(target=tick, name="servebench-status", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
        with contextlib.suppress(Exception):
            line.show(time.monotonic() - started, "", final=True)


def on_terminal(reporter: Any, capture: Any, label: str) -> ProgressLine:
    """A ``ProgressLine`` through pytest's terminal reporter, with output capture lifted for
    each write (as live logging does) so that it reaches the terminal during the test.

    On a terminal the line goes below the one pytest is writing (its file name and letters,
    or ``-v``'s test id) and is erased at the end with the cursor put back where pytest left
    it, written past pytest's writer so that its idea of the current line stays true; without
    a terminal, plain lines through the reporter."""
    import sys

    def lifted(write: Callable[[], None]) -> None:
        if capture is None:
            write()
            return
        with capture.global_and_fixture_disabled():
            write()

    tty = bool(reporter.isatty)
    if not tty:
        return ProgressLine(lambda text: lifted(lambda: reporter.write_line(text)), tty=False,
                            label=label)
    writer = reporter.config.get_terminal_writer()  # the reporter's own writer
    column = 0
    shown = False

    def raw(text: str) -> None:
        writer.flush()
        sys.stdout.write(text)
        sys.stdout.flush()

    def write(text: str) -> None:
        def out() -> None:
            nonlocal column, shown
            if not shown:
                column = writer.width_of_current_line
                raw("\n")
                shown = True
            width = max(20, writer.fullwidth - 1)  # a wrapped line could not be erased
            raw("\r\x1b[2K" + text[:width])

        lifted(out)

    def clear() -> None:
        back = f"\x1b[{column}C" if column else ""
        lifted(lambda: raw("\r\x1b[2K\x1b[1A" + back))

    return ProgressLine(write, tty=True, label=label, clear=clear)
