"""Handlers whose sandbox fails at start, for leak tests: ``FAIL_AT=import`` raises while the
runtime imports the module (the init phase fails), ``FAIL_AT=exit`` ends the runtime process
there. Run in sandboxes as ``tests.backends.local.failing_handlers.handler``."""

from __future__ import annotations

import os
from typing import Any

if os.environ.get("FAIL_AT") == "import":
    raise RuntimeError("init fails on purpose")
if os.environ.get("FAIL_AT") == "exit":
    os._exit(3)


def handler(event: Any, context: Any) -> dict[str, Any]:
    return {"ok": True}
