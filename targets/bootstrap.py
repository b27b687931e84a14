"""The function runtime's entry point: ``python -m targets.bootstrap targets.handler.handler``.

The Runtime Interface Emulator starts this as its runtime. It marks when the runtime process
began (for the cold-start decomposition: the time before the handler module is imported is the
runtime's own init), asks the kernel to kill it if the emulator dies, and hands over to
``awslambdaric``, the AWS runtime interface client that Lambda's own Python images run.
"""

from __future__ import annotations

import os
import sys
import time

os.environ["SERVEBENCH_RUNTIME_STARTED_UNIX"] = repr(time.time())


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:
        os._exit(1)


def main(argv: list[str]) -> None:
    _die_with_parent()
    from awslambdaric.__main__ import main as ric_main

    ric_main(argv)


if __name__ == "__main__":
    main(sys.argv)
