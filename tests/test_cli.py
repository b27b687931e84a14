from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

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


def test_cost_json_for_each_platform(capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        ("--platform", "lambda", "--memory-mb", "1024", "--duration-ms", "630"): 10.70,
        ("--platform", "ec2", "--instance", "c5.large", "--throughput", "34"): 0.694,
        ("--platform", "fargate", "--vcpu", "0.5", "--memory-gb", "1", "--throughput", "10"):
            (0.5 * 0.04048 + 0.004445) / 3600 / 10 * 1e6,
    }
    for args, usd_per_million in cases.items():
        assert main(["cost", *args, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["usd_per_million"] == pytest.approx(usd_per_million, rel=1e-3)
        assert out["usd_per_1000"] == pytest.approx(usd_per_million / 1000, rel=1e-3)


def test_breakeven_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["breakeven", "--lambda-memory-mb", "1024", "--duration-ms", "18386",
                 "--instance", "t2.small", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["calls_per_day"] == pytest.approx(1800, abs=1)


def test_cost_errors_are_clear(capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in ((["--platform", "lambda", "--memory-mb", "1024"], "--duration-ms"),
                          (["--platform", "ec2", "--instance", "z9.huge", "--throughput", "1"],
                           "no price for ec2 instance 'z9.huge'")):
        with pytest.raises(SystemExit):
            main(["cost", *args])
        assert message in capsys.readouterr().err


def test_cost_of_sagemaker_is_sagemakers_rate(capsys: pytest.CaptureFixture[str]) -> None:
    """A plain instance name on SageMaker is priced as its ml. twin when the price book has
    one (it was priced at EC2's rate: $0.085/h for c5.large instead of $0.102/h)."""
    for instance in ("ml.c5.large", "c5.large"):
        assert main(["cost", "--platform", "sagemaker", "--instance", instance,
                     "--throughput", "34", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["usd_per_million"] == pytest.approx(0.102 / 3600 / 34 * 1e6)
        assert out["basis"].startswith("ml.c5.large at $0.102/h")


@pytest.mark.parametrize(("args", "message"), [
    (["--platform", "sagemaker", "--instance", "t2.micro"],
     "SageMaker instance types are ml.*: 't2.micro' is not one"),
    (["--platform", "ec2", "--instance", "ml.c5.large"],
     "ml.c5.large is a SageMaker instance type"),
    (["--platform", "fargate", "--vcpu", "0.25", "--memory-gb", "4"],
     "Fargate offers 0.25 vCPU with 0.5, 1 or 2 GB, not 4 GB"),
    (["--platform", "fargate", "--vcpu", "3", "--memory-gb", "6"], "not 3"),
])
def test_cost_refuses_what_a_platform_does_not_offer(
        args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["cost", *args, "--throughput", "10"])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_breakeven_against_a_sagemaker_instance(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["breakeven", "--lambda-memory-mb", "1024", "--duration-ms", "18386",
                 "--platform", "sagemaker", "--instance", "c5.large", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["instance"] == "ml.c5.large"
    assert out["server_usd_per_day"] == pytest.approx(0.102 * 24)
    with pytest.raises(SystemExit):
        main(["breakeven", "--lambda-memory-mb", "1024", "--duration-ms", "1",
              "--instance", "ml.c5.large"])
    assert "SageMaker instance type" in capsys.readouterr().err


def test_history_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_servebench.history import History, make_entry, new_run

    from .synthetic import result

    path = tmp_path / "h.json"
    h = History.at(path)
    h.append(new_run([make_entry("t::x", result([0.010] * 300), [], "local")],
                     backend="local", name="base"))
    h.append(new_run([make_entry("t::x", result([0.020] * 300), [], "local")],
                     backend="local", name="slow"))
    assert main(["history", "list", "--history", str(path)]) == 0
    out = capsys.readouterr().out
    assert "base" in out and "slow" in out
    assert main(["history", "show", "base", "--history", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "base"
    assert main(["history", "compare", "slow", "--history", str(path), "--fail", "p50:10%"]) == 1
    assert "REGRESSION" in capsys.readouterr().out
    assert main(["history", "export", "--csv", "--history", str(path)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == ["base", "slow"]
    assert float(rows[1]["p50_s"]) == pytest.approx(0.020)
    path.write_text("{bad")
    assert main(["history", "list", "--history", str(path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err and path.read_text() == "{bad"


def test_each_command_group_is_a_module_and_the_plugin_imports_none() -> None:
    """``cli/`` holds one module per command group, each adding its own subcommands; loading the
    plugin (every pytest run) imports none of them."""
    import argparse
    import importlib
    import subprocess
    import sys

    groups = {"load": ["load"], "cost": ["cost", "breakeven"], "history": ["history"],
              "serve": ["serve"], "lambda_": ["lambda"],
              "build": ["build", "package", "base-image", "image"]}
    for group, commands in groups.items():
        module = importlib.import_module(f"pytest_servebench.cli.{group}")
        sub = argparse.ArgumentParser().add_subparsers()
        module.add_parser(sub)
        assert sorted(sub.choices or ()) == sorted(commands), group
    code = ("import sys, pytest, pytest_servebench.plugin; "
            "print([m for m in sys.modules if m.startswith('pytest_servebench.cli')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
