"""--servebench-backend=aws through pytest, against the offline pair (moto + the local Lambda
platform, found by boto3's standard endpoint variables): --target=lambda deploys, measures and
removes a function; the budget guard refuses a run before it is sent; @pytest.mark.aws skips
elsewhere; options that cannot work are usage errors before anything is deployed."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_servebench.backends.aws.sweep import find_leftovers

from .conftest import Moto

TEST = """
from pytest_servebench import ClosedLoop
from targets.payloads import jpeg

def test_lambda(servebench, servebench_target):
    r = servebench.run(ClosedLoop(concurrency=1, requests=4), payload=jpeg(224, 224))
    assert r.success_ratio == 1.0, r.errors
    assert r.cost is not None and r.cost.usd_per_million > 0
    print("PROFILE", servebench_target.describe()["backend"], servebench_target.function)
"""


TINY_PACKAGE = """
import zipfile
from pathlib import Path
from pytest_servebench.backends.aws import packaging
from pytest_servebench.backends.aws.packaging import FunctionPackage

def pytest_configure():
    # The control plane does not care what a package holds: a tiny zip, not a model's.
    path = Path("tiny.zip").resolve()  # in pytester's folder, removed with it
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("targets/handler.py", "def handler(event, context):\\n    return {}\\n")
    package = FunctionPackage(target="text_rf", path=path, sha256="0" * 64,
                              zipped_bytes=path.stat().st_size, unzipped_bytes=100,
                              model_file="model/text_rf.joblib")
    packaging.build_zip = lambda target: package
"""


def _leftovers(moto: Moto) -> list[Any]:
    import boto3

    session = boto3.Session()
    return find_leftovers(lambda service: session.client(service), older_than_s=None)


def test_target_lambda_on_aws_deploys_measures_and_removes(
        pytester: pytest.Pytester, aws_env: Moto, lambda_platform: Any) -> None:
    before = {(x.resource.kind, x.resource.name) for x in _leftovers(aws_env)}
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess(
        "--servebench-backend=aws", "--target=lambda", "--servebench-memory-mb=1024", "-s",
        "--servebench-no-save", timeout=600)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*PROFILE aws sb-*-mobilenet-v2-1024mb"])
    after = {(x.resource.kind, x.resource.name) for x in _leftovers(aws_env)}
    assert after <= before  # the run removed every function, role, bucket and log group


def test_budget_guard_refuses_before_sending(pytester: pytest.Pytester, aws_env: Moto,
                                            lambda_platform: Any,
                                            ) -> None:
    pytester.makeconftest(TINY_PACKAGE)
    pytester.makepyfile("""
from pytest_servebench import ClosedLoop

def test_too_dear(servebench, servebench_backend):
    fn = servebench_backend.function("text_rf", memory_mb=10240)
    servebench.run(ClosedLoop(concurrency=1, requests=100_000), payload={"text": "x"},
                   target=fn)
""")
    result = pytester.runpytest_subprocess(
        "--servebench-backend=aws", "--servebench-aws-budget-usd=0.50", "--servebench-no-save",
        timeout=300)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_too_dear*estimated $16.*over its budget of $0.50 "
                                 "(--servebench-aws-budget-usd); nothing was sent*"])
    assert not any(fn["FunctionName"].startswith("sb-")
                   for fn in lambda_platform_functions(lambda_platform))


def lambda_platform_functions(srv: Any) -> list[dict[str, Any]]:
    import boto3

    functions: list[dict[str, Any]] = boto3.client("lambda", endpoint_url=srv.endpoint_url
                                                   ).list_functions()["Functions"]
    return functions


def test_aws_marker_skips_on_other_backends(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
import pytest

@pytest.mark.aws
def test_cloud():
    raise AssertionError("ran without the aws backend")
""")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs real AWS: run with --servebench-backend=aws*"])


@pytest.mark.parametrize(("args", "message"), [
    (["--target=ec2", "--servebench-instance-type=ml.c5.large"],
     "*--target=ec2: ml.c5.large is a SageMaker instance type*"),
    (["--servebench-aws-budget-usd=-1"], "*--servebench-aws-budget-usd: expected dollars >= 0*"),
])
def test_options_that_cannot_work_are_usage_errors(pytester: pytest.Pytester, aws_env: Moto,
                                                   args: list[str], message: str) -> None:
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess("--servebench-backend=aws", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_no_region_is_a_usage_error(pytester: pytest.Pytester, aws_env: Moto,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess("--servebench-backend=aws", "--target=lambda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--servebench-backend=aws: no AWS region*"])


def test_a_plan_deploys_and_sends_nothing_and_prices_every_run(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--servebench-aws-plan`` needs no credentials and no AWS: functions are described, each
    run is estimated as the budget guard would and handed stand-ins, so the test goes on to its
    next run (up to a check that fails on them); every test is reported planned and nothing
    reaches the history."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION",
                "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing may call it
    pytester.makepyfile("""
from pytest_servebench import ClosedLoop

def test_two_sizes(servebench, servebench_backend):
    results = []
    for mb in (1024, 2048):
        fn = servebench_backend.function("mobilenet_v2", memory_mb=mb)
        results.append(servebench.run(ClosedLoop(concurrency=4, requests=1000), payload=b"x",
                                      target=fn))
    # False of the stand-ins (they took the assumed second): planned, not failed.
    assert all(r.p50.value < 0.001 for r in results)
""")
    result = pytester.runpytest_subprocess("--servebench-backend=aws", "--servebench-aws-plan",
                                           f"--servebench-history={pytester.path / 'h.json'}")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=1)
    # 1,000 requests at 1 GB and 1 s: $0.0169; at 2 GB: $0.0335; together $0.0504.
    result.stdout.fnmatch_lines([
        "*servebench aws plan (nothing was deployed or sent)*",
        "test_a_plan*::test_two_sizes * 2 * 2000  $ * 0.0504",
        "total: $0.0504 for 2 run(s) of 1 test(s): fits the budget of $1.00*",
    ])
    assert not (pytester.path / "h.json").exists()
