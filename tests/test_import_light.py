"""Plugin load must stay light: it happens in every pytest run of an environment."""

from __future__ import annotations

import re
import subprocess
import sys

HEAVY = ("numpy", "scipy", "httptools", "asyncio", "uvloop", "torch", "onnxruntime", "boto3",
         "botocore", "docker", "testcontainers")


def test_plugin_imports_nothing_heavy() -> None:
    code = ("import sys, pytest_servebench.plugin, pytest_servebench; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plugin_import_time_on_top_of_pytest() -> None:
    # pytest is already imported in any session that loads us, so what we add is the
    # cumulative import time of our plugin module with pytest loaded first.
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c",
         "import pytest; import pytest_servebench.plugin"],
        capture_output=True, text=True, check=True,
    )
    times = [int(m.group(1)) for m in re.finditer(
        r"import time:\s+\d+ \|\s+(\d+) \| pytest_servebench\.plugin$", out.stderr, re.M)]
    assert len(times) == 1, out.stderr[-2000:]
    assert times[0] < 50_000, f"plugin import took {times[0] / 1000:.1f} ms"


def test_public_names_resolve_lazily() -> None:
    import pytest_servebench

    for name in pytest_servebench.__all__:
        assert getattr(pytest_servebench, name) is not None
