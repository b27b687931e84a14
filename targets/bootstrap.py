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


ERROR_MARK = "SERVEBENCH-FUNCTION-ERROR"


def _mark_errors() -> None:
    """Print one marker line whenever the runtime reports an error to the platform, so the
    platform knows a function error from a result without the emulator's debug log (whose
    volume costs every invocation time)."""
    from awslambdaric.lambda_runtime_client import LambdaRuntimeClient

    post_error = LambdaRuntimeClient.post_invocation_error
    post_init_error = LambdaRuntimeClient.post_init_error

    def invocation_error(self: object, invoke_id: str, *args: object, **kw: object) -> object:
        print(f"{ERROR_MARK} invoke {invoke_id}", flush=True)
        return post_error(self, invoke_id, *args, **kw)

    def init_error(self: object, *args: object, **kw: object) -> object:
        print(f"{ERROR_MARK} init", flush=True)
        return post_init_error(self, *args, **kw)

    LambdaRuntimeClient.post_invocation_error = invocation_error
    LambdaRuntimeClient.post_init_error = init_error


def main(argv: list[str]) -> None:
    _die_with_parent()
    if os.environ.get("SERVEBENCH_MARK_ERRORS", "1") != "0":
        _mark_errors()
    from awslambdaric.__main__ import main as ric_main

    ric_main(argv)


if __name__ == "__main__":
    main(sys.argv)
