"""Long steps outside a run show that they are working: a model build through the provider
(``progress.working``), one line after a couple of seconds, nothing under -q."""

from __future__ import annotations

import pytest

PROVIDER = """
import time
from pathlib import Path

class Slow:
    runtime_module = "x"
    handler = "x.h"
    app = "x:app"
    http_protocol = None

    def models(self):
        return {}

    def artifact(self, model):
        time.sleep(2.6)  # a model being exported
        return Path(__file__)

    def contents(self, model, *, image=False): ...
    def write_package(self, model, out, *, image=False): ...
    def cache_dir(self): return Path(".")
    def dockerfile(self): return Path(".")
    def build_command(self, models): return 0
    def package_command(self, argv): return 0

provider = Slow()
"""

TEST = """
from pytest_servebench.backends.local.artifacts import built_artifact

def test_build():
    assert built_artifact("m").name == "slow_provider.py"
"""


@pytest.mark.parametrize(("args", "shown"), [((), True), (("-q",), False)])
def test_a_slow_model_build_shows_a_line(pytester: pytest.Pytester,
                                         monkeypatch: pytest.MonkeyPatch,
                                         args: tuple[str, ...], shown: bool) -> None:
    pytester.makepyfile(slow_provider=PROVIDER, test_build=TEST)
    pytester.syspathinsert()
    monkeypatch.setenv("SERVEBENCH_PROVIDER", "slow_provider:provider")
    from pytest_servebench import provider

    monkeypatch.setattr(provider, "_cached", {})
    result = pytester.runpytest("--servebench-no-save", *args)
    result.assert_outcomes(passed=1)
    line = "*model m: building (or reading the cache)  2.*s*"
    if shown:
        result.stdout.fnmatch_lines([line])
    else:
        result.stdout.no_fnmatch_line(line)
