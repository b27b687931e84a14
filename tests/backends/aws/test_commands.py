"""``servebench aws sweep`` against moto: a killed run's resources are found and removed."""

from __future__ import annotations

import argparse

import pytest

from pytest_servebench.backends.aws import AwsBackend
from pytest_servebench.backends.aws.commands import add_parser, parse_age_s
from pytest_servebench.backends.aws.packaging import FunctionPackage
from pytest_servebench.backends.aws.resources import RunTags
from pytest_servebench.backends.aws.sweep import find_leftovers

from .conftest import Moto


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="servebench")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["aws", *argv])


def test_ages() -> None:
    assert parse_age_s("90") == 90 and parse_age_s("30m") == 1800
    assert parse_age_s("2h") == 7200 and parse_age_s("1d") == 86400
    with pytest.raises(argparse.ArgumentTypeError, match="like 30m"):
        parse_age_s("soon")


def test_sweep_dry_run_lists_and_sweep_removes(aws_env: Moto, tiny_package: FunctionPackage,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    dead = AwsBackend(tags=RunTags("000000000000dead", "someone@elsewhere", 0.0))
    dead.function("text_rf", memory_mb=1024)  # left behind: the run was killed
    args = _parse("sweep", "--dry-run")
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "would remove function" in out and "run 000000000000dead" in out
    assert len(find_leftovers(dead.client, run_id=dead.tags.run_id)) == 3  # nothing removed
    args = _parse("sweep", "--older-than", "1h")
    assert args.func(args) == 0
    assert "removed 3 of 3" in capsys.readouterr().out
    assert find_leftovers(dead.client, run_id=dead.tags.run_id) == []
    args = _parse("sweep", "--run-id", "000000000000dead")
    assert args.func(args) == 0
    assert "nothing to sweep for run 000000000000dead" in capsys.readouterr().out


def test_the_cli_has_the_aws_commands(aws_env: Moto,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_servebench.cli import main

    assert main(["aws", "sweep", "--run-id", "000000000000none", "--dry-run"]) == 0
    assert "nothing to sweep for run 000000000000none" in capsys.readouterr().out


def test_a_plan_of_the_whole_main_job_deploys_nothing_and_ends_clean() -> None:
    """``servebench aws plan suites/``: every case priced, nothing called (the endpoint is a
    closed port), and no error at teardown (002 stops its server early: a planned server is
    stopped as nothing)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_REGION="us-east-1")
    done = subprocess.run([sys.executable, "-m", "pytest_servebench.cli", "aws", "plan",
                           "suites/"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "servebench aws plan (nothing was deployed or sent)" in out
    assert "test_004_serving_bursts.py::test_bursty_workload[lambda-workload-200]" in out
    assert "fits the budget" in out
    assert " error" not in out.lower().split("servebench aws plan")[-1], out[-3000:]
