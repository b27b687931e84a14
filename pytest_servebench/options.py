"""Options and markers checked once, before anything is deployed: a bad one is a usage error
(exit status 4, one line) or, for an SLO marker, a collection error of the test that carries it.
The pytest hooks that call these live in ``plugin.py``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

BUILTIN_TARGETS = ("http", "lambda", "ec2", "fargate", "sagemaker")
LAMBDA_MEMORY_MB = (128, 10240)  # as functions.platform.FunctionConfig checks it
_TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")


def check_options(config: pytest.Config, *, price_book: Any) -> None:
    """Check every option that can be checked without deploying anything, once, at start-up:
    a bad one is a usage error (exit status 4, one line on stderr) before any target exists.
    What needs the collected conftests (a target name no plugin provides) waits for the end of
    collection (``pytest_collection_finish``); what needs a target or the history (a baseline
    run id or name) is reported when it is used."""
    name = config.getoption("servebench_target")
    if name and not _TARGET_NAME.fullmatch(name):
        raise pytest.UsageError(
            f"--target={name}: expected a target name (letters, digits, '_', '.', ':', '-'), "
            f"e.g. {', '.join(BUILTIN_TARGETS)}")
    url = config.getoption("servebench_url")
    if name == "http" and not url:
        raise pytest.UsageError("--target=http needs --servebench-url=URL")
    if url:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            ok = False
        if not ok:
            raise pytest.UsageError(f"--servebench-url={url}: expected an http:// or https:// "
                                    "URL with a host, e.g. http://127.0.0.1:8080/predict")
    if config.getoption("servebench_backend") == "aws":
        import math

        budget = config.getoption("servebench_aws_budget_usd")
        if not (math.isfinite(budget) and budget >= 0):
            raise pytest.UsageError(f"--servebench-aws-budget-usd: expected dollars >= 0, got "
                                    f"{budget}")
        if not config.getoption("servebench_aws_plan"):  # a plan asks nothing of AWS
            _check_aws_session(config)
        if name in ("ec2", "sagemaker"):  # refused before anything is provisioned
            from .platforms import server_profile

            try:
                server_profile(name, instance_type=config.getoption("servebench_instance_type"))
            except ValueError as exc:
                raise pytest.UsageError(f"--target={name}: {exc}") from None
    memory_mb = config.getoption("servebench_memory_mb")
    low, high = LAMBDA_MEMORY_MB
    if not low <= memory_mb <= high:
        raise pytest.UsageError(
            f"--servebench-memory-mb: Lambda memory is {low}..{high} MB, not {memory_mb}")
    task_size(config.getoption("servebench_task_size"))
    keep = config.getoption("servebench_keep")
    if keep is not None and keep < 0:
        raise pytest.UsageError(f"--servebench-keep: expected a number of runs per test >= 0 "
                                f"(0 keeps every run), got {keep}")
    ref = config.getoption("servebench_compare")
    spec = config.getoption("servebench_compare_fail")
    if ref or spec:
        from .compare import baseline_size, parse_thresholds

        try:
            if ref:
                baseline_size(ref)
        except ValueError as exc:
            raise pytest.UsageError(
                f"--servebench-compare={ref}: {exc} (or last, a run id or a run name)") from None
        try:
            if spec:
                parse_thresholds(spec)
        except ValueError as exc:
            raise pytest.UsageError(f"--servebench-compare-fail={spec}: {exc}") from None
    records = config.getoption("servebench_records")
    if records and Path(records).exists() and not Path(records).is_dir():
        raise pytest.UsageError(
            f"--servebench-records={records}: expected a directory, but that is a file")
    if prices_source(config)[1] is not None:
        price_book(config)  # a named price book that is missing or broken fails now


def _check_aws_session(config: pytest.Config) -> None:
    """The aws backend's profile, region and credentials exist (boto3's chain), before any
    test runs: nothing is asked of AWS here, only the local configuration is read."""
    try:
        from .backends.aws import make_session

        session = make_session(config.getoption("servebench_aws_profile"),
                               config.getoption("servebench_aws_region"))
        credentials = session.get_credentials()
    except Exception as exc:  # botocore's ProfileNotFound and kin
        raise pytest.UsageError(f"--servebench-backend=aws: {exc}") from None
    if not session.region_name:
        raise pytest.UsageError("--servebench-backend=aws: no AWS region: set "
                                "--servebench-aws-region, AWS_REGION or a profile's region")
    if credentials is None:
        raise pytest.UsageError("--servebench-backend=aws: no AWS credentials found "
                                "(environment, --servebench-aws-profile, SSO)")


def task_size(raw: str) -> tuple[float, float]:
    """``--servebench-task-size``: ``VCPU/GB``, two positive numbers."""
    import math

    try:
        vcpu, gb = (float(x) for x in raw.split("/"))
    except ValueError:
        vcpu = gb = math.nan
    if not (math.isfinite(vcpu) and math.isfinite(gb) and vcpu > 0 and gb > 0):
        raise pytest.UsageError(
            f"--servebench-task-size: expected VCPU/GB like 1/2 (two positive numbers), "
            f"got {raw!r}")
    return vcpu, gb


def unknown_target(name: str) -> str:
    return (f"--target={name}: no backend provides this target "
            f"(built in: {', '.join(BUILTIN_TARGETS)}; plugins add more)")


class BadSLOMarker(pytest.Collector):
    """Stands in for a test whose ``@pytest.mark.slo`` cannot be read: collecting it fails."""

    def __init__(self, *, problems: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problems = problems

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        raise self.CollectError("\n".join(dict.fromkeys(self.problems)))


def slo_marker_problems(item: pytest.Item) -> list[str]:
    marks = list(item.iter_markers("slo"))
    if not marks:
        return []
    from .slo import SLO, SLOSyntaxError, parse_slo

    problems = []
    for mark in marks:
        if mark.kwargs:
            problems.append("@pytest.mark.slo takes bounds as strings, e.g. "
                            f"'p99 < 200ms', not keywords ({', '.join(mark.kwargs)}=...)")
        for bound in mark.args:
            if isinstance(bound, SLO):
                continue
            if not isinstance(bound, str):
                problems.append(f"@pytest.mark.slo({bound!r}): a bound is a string "
                                f"such as 'p99 < 200ms', not {type(bound).__name__}")
                continue
            try:
                parse_slo(bound)
            except SLOSyntaxError as exc:
                problems.append(f"@pytest.mark.slo: {exc}")
    return problems


def prices_source(config: pytest.Config) -> tuple[str, str | None]:
    """(where the price book was named, its path); path None: the bundled book."""
    import os

    option = config.getoption("servebench_prices")
    if option:
        return "--servebench-prices", option
    return "$SERVEBENCH_PRICES", os.environ.get("SERVEBENCH_PRICES") or None
