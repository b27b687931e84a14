"""Each platform's profile: what it offers (bounds), how it bills (its pricing rule), and the
refusal of what it does not offer, in the same words for the backends, cost and the CLI."""

from __future__ import annotations

import doctest

import pytest

from pytest_servebench import platforms
from pytest_servebench.platforms import (
    FARGATE_TASK_SIZES,
    FargateProfile,
    InstanceProfile,
    LambdaProfile,
    PlatformError,
    Shape,
    instance_profile,
    profile_of,
    server_profile,
)
from pytest_servebench.pricebook import load_price_book

BOOK = load_price_book()


def test_docstring_examples() -> None:
    failures, attempted = doctest.testmod(platforms, optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failures == 0


@pytest.mark.parametrize("memory_mb", [128, 1769, 10240])
def test_lambda_memory_bounds_hold(memory_mb: int) -> None:
    assert LambdaProfile(memory_mb).shape == Shape.for_lambda(memory_mb)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"memory_mb": 127}, r"Lambda memory is 128\.\.10240 MB, not 127"),
    ({"memory_mb": 10241}, r"128\.\.10240 MB, not 10241"),
    ({"memory_mb": 1024, "arch": "ppc64"}, r"x86_64 and arm64, not 'ppc64'"),
    ({"memory_mb": 1024, "ephemeral_mb": 256}, r"ephemeral storage is 512\.\.10240 MB"),
    ({"memory_mb": 1024, "api_gateway": "websocket"}, r"rest or http, not 'websocket'"),
])
def test_lambda_refuses_what_it_does_not_offer(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PlatformError, match=message):
        LambdaProfile(**kwargs)  # type: ignore[arg-type]


def test_lambda_bills_gb_seconds_by_the_millisecond() -> None:
    # 512 MB for 300.2 ms: billed 301 ms, 0.5 GB * 0.301 s at $0.0000166667 + $0.20 per million.
    assert LambdaProfile(512).usd_per_call(300.2, BOOK) == pytest.approx(
        0.5 * 0.301 * 0.0000166667 + 2e-7)
    assert LambdaProfile(512, "arm64").usd_per_call(300, BOOK) == pytest.approx(
        0.5 * 0.3 * 0.0000133334 + 2e-7)


def test_ec2_offers_the_books_types_and_never_sagemakers() -> None:
    c5 = instance_profile("ec2", "c5.large", BOOK)
    assert (c5.vcpu, c5.memory_gib, c5.arch, c5.usd_per_hour(BOOK)) == (2, 4, "x86_64", 0.085)
    assert instance_profile("ec2", "t4g.medium", BOOK).arch == "arm64"
    with pytest.raises(PlatformError, match=r"ml\.c5\.large is a SageMaker instance type"):
        instance_profile("ec2", "ml.c5.large", BOOK)
    with pytest.raises(ValueError, match=r"no price for ec2 instance 'z9\.huge'.*known: "):
        instance_profile("ec2", "z9.huge", BOOK)


def test_sagemaker_offers_ml_types_and_a_plain_name_only_where_the_book_has_its_twin() -> None:
    ml = instance_profile("sagemaker", "ml.c5.large", BOOK)
    assert ml.usd_per_hour(BOOK) == 0.102 and ml.platform == "sagemaker"
    # The bug this guards: a plain name on SageMaker was priced at EC2's rate ($0.085).
    assert instance_profile("sagemaker", "c5.large", BOOK) == ml
    with pytest.raises(PlatformError, match=r"'t2\.micro' is not one.*no ml\.t2\.micro"):
        instance_profile("sagemaker", "t2.micro", BOOK)
    with pytest.raises(ValueError, match=r"no price for sagemaker instance 'ml\.z9\.huge'"):
        instance_profile("sagemaker", "ml.z9.huge", BOOK)


def test_fargate_offers_aws_task_sizes() -> None:
    offered = [(0.25, 0.5), (0.25, 1), (0.25, 2), (0.5, 1), (0.5, 4), (1, 2), (1, 8), (2, 4),
               (2, 16), (4, 8), (4, 30), (8, 16), (8, 60), (16, 32), (16, 120)]
    for vcpu, gb in offered:
        FargateProfile(vcpu, gb)
    refused = [(0.25, 4), (0.5, 0.5), (0.5, 5), (1, 1), (1, 9), (2, 17), (4, 31), (8, 18),
               (16, 36), (3, 6), (0.3, 1), (32, 64)]
    for vcpu, gb in refused:
        with pytest.raises(PlatformError, match="Fargate offers"):
            FargateProfile(vcpu, gb)
    # What the suites and the backend tests ask for (study 003: memory = 2 x vCPU).
    for vcpu in (0.25, 0.5, 1.0):
        FargateProfile(vcpu, 2 * vcpu)
    assert set(FARGATE_TASK_SIZES) == {0.25, 0.5, 1, 2, 4, 8, 16}
    with pytest.raises(PlatformError, match=r"8 vCPU with 16\.\.60 in steps of 4 GB"):
        FargateProfile(8, 18)


def test_fargate_bills_vcpu_and_gb_hours() -> None:
    assert FargateProfile(0.5, 1).usd_per_hour(BOOK) == pytest.approx(0.5 * 0.04048 + 0.004445)
    assert FargateProfile(1, 2, "arm64").usd_per_hour(BOOK) == pytest.approx(
        0.03238 + 2 * 0.00356)
    assert FargateProfile(0.25, 0.5).shape == Shape(0.25, 512)


def test_server_profile_names_what_is_missing() -> None:
    with pytest.raises(PlatformError, match="server platform is one of"):
        server_profile("lambda")
    with pytest.raises(PlatformError, match="vcpu= and memory_gb="):
        server_profile("fargate", vcpu=1)
    with pytest.raises(PlatformError, match="needs instance_type="):
        server_profile("ec2", instance_type=None)
    assert isinstance(server_profile("sagemaker", instance_type="ml.m5.xlarge"), InstanceProfile)


def test_a_target_profile_reads_as_its_platforms() -> None:
    assert profile_of({"platform": "lambda", "memory_mb": 2048, "arch": "arm64"}, BOOK) == \
        LambdaProfile(2048, "arm64")
    assert profile_of({"platform": "sagemaker", "instance_type": "c5.large"}, BOOK) == \
        instance_profile("sagemaker", "ml.c5.large", BOOK)
    assert profile_of({"platform": "fargate", "vcpu": 0.5, "memory_gb": 1}, BOOK) == \
        FargateProfile(0.5, 1.0)
    assert profile_of({"kind": "http", "url": "http://x"}, BOOK) is None
