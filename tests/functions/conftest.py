"""A function platform per test module, on real Runtime Interface Emulator sandboxes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def platform() -> Iterator[Any]:
    pytest.importorskip("awslambdaric", reason="the local Lambda platform needs [functions]")
    from pytest_servebench.backends.local.functions import ProcessLauncher
    from pytest_servebench.backends.local.processes import new_owner
    from pytest_servebench.backends.local.shaping import Shaper
    from pytest_servebench.functions.api import PlatformServer

    owner = new_owner()
    shaper = Shaper()
    with PlatformServer(lambda: ProcessLauncher(owner=owner, shaper=shaper),
                        reap_interval_s=0.1) as srv:
        srv.owner = owner  # type: ignore[attr-defined]
        srv.shaper = shaper  # type: ignore[attr-defined]
        yield srv


def config(name: str, handler: str = "echo", **kw: Any) -> Any:
    from pytest_servebench.functions.platform import FunctionConfig

    env = {"PYTHONPATH": str(ROOT), **kw.pop("environment", {})}
    return FunctionConfig(name=name, handler=f"tests.functions.handlers.{handler}",
                          environment=env, **kw)


@pytest.fixture(scope="module")
def lam(platform: Any) -> Any:
    """A boto3 Lambda client on the platform, with boto3's own retries off."""
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    creds = platform.credentials
    return boto3.client("lambda", endpoint_url=platform.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=creds.access_key_id,
                        aws_secret_access_key=creds.secret_access_key,
                        config=Config(retries={"max_attempts": 0}, read_timeout=60))


def signed_headers(creds: Any, method: str, url: str, body: bytes = b"",
                   headers: dict[str, str] | None = None, region: str = "us-east-1",
                   service: str = "lambda") -> dict[str, str]:
    """The headers botocore's own signer gives a request (for raw HTTP tests)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    SigV4Auth(Credentials(creds.access_key_id, creds.secret_access_key, creds.session_token),
              service, region).add_auth(request)
    return dict(request.headers.items())
