"""What the offline pair cannot do is said as such: a function over Lambda's 250 MB unzipped
deploys as a container image, which the local Lambda platform (a stand-in for Lambda) refuses;
the aws backend turns that refusal into ``Unsupported`` (the test is skipped with its words)
and leaves nothing behind. Against AWS the same refusal stays an error."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pytest_servebench.backends.aws import AwsBackend
from pytest_servebench.backends.aws.images import NoPush
from pytest_servebench.backends.aws.packaging import FunctionPackage
from pytest_servebench.backends.base import Unsupported

from .conftest import Moto, left_in_moto


def test_an_image_function_on_the_local_platform_is_unsupported_not_failed(
        lambda_platform: Any, tiny_package: FunctionPackage,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Control plane: moto (ECR) and the local Lambda platform (CreateFunction)."""
    from pytest_servebench.backends.aws import packaging as packaging_module

    big = dataclasses.replace(tiny_package, unzipped_bytes=300 * 2**20)
    monkeypatch.setattr(packaging_module, "build_zip", lambda target: big)
    with AwsBackend(images=NoPush()) as backend, pytest.raises(
            Unsupported, match=r"text_rf's package is over Lambda's 250 MB unzipped, so it "
                               r"deploys as a container image, which the Lambda endpoint here "
                               r"\(http://127.0.0.1:\d+, not AWS\) refused: .*container images"):
        backend.function("text_rf", memory_mb=2048)
    assert left_in_moto(backend.tags.run_id) == []


def test_the_same_refusal_from_a_zip_function_is_an_error(
        lambda_platform: Any, aws_env: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the image limit of a stand-in becomes a skip: a refused zip function still fails."""
    import botocore.exceptions

    with AwsBackend() as backend:
        def refuse(**kwargs: Any) -> dict[str, Any]:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "InvalidParameterValueException", "Message": "no"}},
                "CreateFunction")

        monkeypatch.setattr(backend, "_create_function", refuse)
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            backend.function("text_rf", memory_mb=512)
        assert not isinstance(caught.value, Unsupported)


def test_only_aws_is_elastic(aws_env: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    """003's finding that throughput grows with users needs the cloud: the pair on loopback
    shares this machine's cores, and says so (no request is sent: capabilities() reads the
    client's endpoint only)."""
    with AwsBackend() as offline:
        assert not offline.capabilities().elastic
        assert "is not AWS" in offline.capabilities().limits
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA"):
        monkeypatch.delenv(name, raising=False)
    backend = AwsBackend()
    try:
        assert backend.capabilities().elastic
    finally:
        backend.close()
