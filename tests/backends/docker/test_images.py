"""Images: built from the repo's Dockerfile on a base picked in a documented order, cached by a
key over everything that goes in, and checked at build time (a base with another Python fails
the build, not the first cold start)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_servebench.backends.docker import images


class _FakeImages:
    def __init__(self, present: set[str]) -> None:
        self.present = present

    def get(self, ref: str) -> Any:
        import docker.errors

        if ref not in self.present:
            raise docker.errors.ImageNotFound(ref)
        return object()


class _FakeClient:
    def __init__(self, *present: str) -> None:
        self.images = _FakeImages(set(present))


def test_base_image_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVEBENCH_BASE_IMAGE", raising=False)
    both = _FakeClient(images.PUBLIC_BASE, images.OFFLINE_BASE)
    assert images.resolve_base_image(both) == images.PUBLIC_BASE
    assert images.resolve_base_image(_FakeClient(images.OFFLINE_BASE)) == images.OFFLINE_BASE
    assert images.resolve_base_image(_FakeClient()) == images.PUBLIC_BASE  # Docker pulls it
    assert images.resolve_base_image(both, "my/python:3.11") == "my/python:3.11"
    monkeypatch.setenv("SERVEBENCH_BASE_IMAGE", "env/python:3.11")
    assert images.resolve_base_image(both) == "env/python:3.11"


def test_the_key_follows_what_goes_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the targets need the [targets] extra")
    from pytest_servebench.functions.rie import find_rie

    rie = find_rie()
    key, model = images.image_key("mobilenet_v2", "sha256:base", rie)
    assert images.image_key("mobilenet_v2", "sha256:base", rie) == (key, model)
    assert model.endswith(".onnx")
    assert images.image_key("mobilenet_v2", "sha256:other", rie)[0] != key
    from pytest_servebench.provider import get_provider

    provider = get_provider()
    changed = tmp_path / "Dockerfile"
    changed.write_text(provider.dockerfile().read_text() + "\n# changed\n")
    monkeypatch.setattr(type(provider), "dockerfile", lambda self: changed)
    assert images.image_key("mobilenet_v2", "sha256:base", rie)[0] != key


@pytest.mark.docker
def test_an_image_is_built_once_and_holds_the_package(docker_engine: Any) -> None:
    first = images.ensure_image("mobilenet_v2", client=docker_engine)
    again = images.ensure_image("mobilenet_v2", client=docker_engine)
    assert again.tag == first.tag and again.built is False and again.build_s == 0.0
    img = docker_engine.images.get(first.tag)
    assert img.labels["servebench.target"] == "mobilenet_v2"
    out = docker_engine.containers.run(
        first.tag, ["python3", "-c", "import sys, os, onnxruntime, awslambdaric;"
                    f"print(sys.version_info[:2], os.path.getsize({first.model_path!r}))"],
        remove=True, network_mode="host").decode()
    assert out.startswith("(3, 11)") and int(out.split()[-1]) > 10_000_000
    rie = docker_engine.containers.run(first.tag, ["test", "-x", "/usr/local/bin/aws-lambda-rie"],
                                       remove=True, network_mode="host")
    assert rie == b""


@pytest.mark.docker
def test_a_base_image_with_another_python_fails_the_build(docker_engine: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The package's compiled distributions are this Python's: the build says so."""
    base = images.ensure_image("mobilenet_v2", client=docker_engine).base
    monkeypatch.setattr(sys, "version_info", (3, 99, 0))  # what images reads as this Python
    with pytest.raises(images.ImageError, match=r"BASE_IMAGE has Python 3\.11"):
        images.ensure_image("mobilenet_v2", base=base, client=docker_engine)


@pytest.mark.docker
def test_a_base_image_that_cannot_be_had_says_how_to_build_one_offline(
        docker_engine: Any) -> None:
    with pytest.raises(images.ImageError, match=r"(?s)not on this machine.*servebench base-image"):
        images.ensure_image("mobilenet_v2", base="servebench/no-such-base:0",
                            client=docker_engine)
