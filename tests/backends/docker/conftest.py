"""The container backend's tests; ``docker_engine`` (tests/conftest.py) skips or fails them
when no engine answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("testcontainers", reason="the container backend needs the [docker] extra")
pytest.importorskip("awslambdaric", reason="the images hold the [functions] runtime")


@pytest.fixture(scope="session")
def docker_backend(docker_engine: Any) -> Iterator[Any]:
    """One container backend for the module's tests (images are built once)."""
    from pytest_servebench.backends.docker import DockerBackend

    backend = DockerBackend()
    try:
        yield backend
    finally:
        backend.close()
        assert backend.containers() == []
