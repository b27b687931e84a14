"""Run by ``test_spin.py`` in a process of its own (importing the worker's module imports Locust,
which monkey-patches the standard library with gevent). One greenlet waits on a socket; another
sends it a byte, then spins in ``_Execution.wait_until`` to an arrival time as the relay of an
open loop does. Prints, as JSON lines, when the waiting greenlet saw its byte and when the spin
ended (seconds from the start): a spin that starves the hub's polling sees the byte only after."""

from __future__ import annotations

import json
import socket
import time

import gevent

from pytest_servebench.locust_driver.user import _SPIN_S, _Execution


def probe() -> dict[str, float]:
    ex = _Execution.__new__(_Execution)  # only its clock: wait_until needs nothing else
    ex.origin = time.perf_counter()
    ours, theirs = socket.socketpair()
    seen: list[float] = []

    def reader() -> None:
        ours.recv(16)
        seen.append(ex.now())

    def spinner() -> float:
        gevent.sleep(0)  # the reader is now waiting on its socket
        theirs.send(b"x")  # "the reply": readable at once
        ex.wait_until(ex.now() + _SPIN_S * 0.9)  # shorter than the spin: no timer, all spin
        return ex.now()

    r = gevent.spawn(reader)
    end = gevent.spawn(spinner).get(timeout=5)
    r.join(timeout=5)
    ours.close()
    theirs.close()
    return {"seen": seen[0] if seen else -1.0, "spin_end": end}


if __name__ == "__main__":
    for _ in range(20):
        print(json.dumps(probe()))
