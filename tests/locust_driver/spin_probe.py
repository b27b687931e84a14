"""Run by ``test_spin.py`` in a process of its own (gevent's monkey-patching, as Locust's workers
have it, stays out of pytest's process). One greenlet waits on a socket; another sends it a byte,
then waits in ``pacing.GeventPacer.wait_until`` for a time shorter than the pacer's spin, as the
relay of an open loop does before its next arrival. Prints, as JSON lines, when the waiting
greenlet saw its byte and when the wait ended (seconds from the start): a spin that starves the
hub's polling sees the byte only after."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

from pytest_servebench.pacing import EARLY_S, SPIN_S, GeventPacer, mode  # noqa: E402


def probe() -> dict[str, float]:
    pacer = GeventPacer(time.perf_counter())
    spin = EARLY_S if mode() == "timer" else SPIN_S
    ours, theirs = socket.socketpair()
    seen: list[float] = []

    def reader() -> None:
        ours.recv(16)
        seen.append(pacer.now())

    def spinner() -> float:
        gevent.sleep(0)  # the reader is now waiting on its socket
        theirs.send(b"x")  # "the reply": readable at once
        pacer.wait_until(pacer.now() + spin * 0.9)  # all of it a spin, no timer
        return pacer.now()

    r = gevent.spawn(reader)
    end = gevent.spawn(spinner).get(timeout=5)
    r.join(timeout=5)
    ours.close()
    theirs.close()
    pacer.close()
    return {"seen": seen[0] if seen else -1.0, "spin_end": end}


if __name__ == "__main__":
    for _ in range(20):
        print(json.dumps(probe()))
