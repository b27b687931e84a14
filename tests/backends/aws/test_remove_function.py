"""``AwsBackend.remove_function``: what a module's deployments do at its end (issue #16)."""

from __future__ import annotations

import pytest

from pytest_servebench.backends.aws import AwsBackend
from pytest_servebench.backends.aws.packaging import FunctionPackage

from .conftest import Moto
from .test_backend import _everything


def test_a_removed_function_goes_with_its_log_group_and_the_rest_stays(
        aws_env: Moto, tiny_package: FunctionPackage) -> None:
    with AwsBackend() as backend:
        gone = backend.function("text_rf", memory_mb=512)
        kept = backend.function("text_rf", memory_mb=1024)
        backend.remove_function(gone)
        made = _everything(backend)
        assert made["function"] == [kept.function]
        assert made["log_group"] == [f"/aws/lambda/{kept.function}"]
        assert len(made["role"]) == 1  # the run's role serves the others
        with pytest.raises(LookupError, match="not deployed by this backend"):
            backend.remove_function(gone)
        again = backend.function("text_rf", memory_mb=512)  # the name deploys afresh
        assert again is not gone and again.function == gone.function
        assert sorted(_everything(backend)["function"]) == sorted([gone.function,
                                                                   kept.function])
    assert _everything(backend) == {"function": [], "role": [], "log_group": [], "bucket": []}
