from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pytest_servebench.cli import main

from .loopback import LoopbackServer


def test_load_prints_json(loopback: Callable[..., LoopbackServer],
                          capsys: pytest.CaptureFixture[str]) -> None:
    server = loopback()
    assert main(["load", server.url, "-c", "2", "-n", "50", "--json", "--data", "hi"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["count"] == 50 and out["success_ratio"] == 1.0 and out["p50_s"] > 0
    assert server.requests == 50 and set(server.bodies) == {b"hi"}


def test_load_open_loop_with_failing_slo(loopback: Callable[..., LoopbackServer],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    server = loopback(delay_s=0.005)
    code = main(["load", server.url, "-r", "100", "-d", "0.5", "--arrival", "constant",
                 "--slo", "p50 < 1ms"])
    captured = capsys.readouterr()
    assert code == 1
    assert "count: 50" in captured.out
    assert "p50 < 1ms: FAIL" in captured.err


def test_load_rejects_bad_workload(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["load", "http://127.0.0.1:9/", "-c", "0", "-n", "5"])
    assert "concurrency" in capsys.readouterr().err
