"""Small handlers for platform tests: they start fast, so tests measure the platform's rules,
not a model's load time. Run in sandboxes as ``tests.functions.handlers.<name>``."""

from __future__ import annotations

import os
import time
from typing import Any

SANDBOX = os.environ.get("SERVEBENCH_SANDBOX_ID", "")


def echo(event: Any, context: Any) -> dict[str, Any]:
    print(f"echo {event!r}")
    return {"event": event, "sandbox": SANDBOX,
            "memory_mb": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
            "remaining_ms": context.get_remaining_time_in_millis()}


def sleep(event: Any, context: Any) -> dict[str, Any]:
    time.sleep(float(event.get("seconds", 0.5)))
    return {"slept": event.get("seconds", 0.5), "sandbox": SANDBOX}


def fail(event: Any, context: Any) -> dict[str, Any]:
    raise ValueError(f"asked to fail: {event!r}")


def hog(event: Any, context: Any) -> dict[str, Any]:
    block = bytearray(int(event.get("mb", 400)) * 2**20)
    for i in range(0, len(block), 4096):  # touch every page: resident, not just reserved
        block[i] = 1
    return {"held_mb": len(block) // 2**20}
