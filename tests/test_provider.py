"""The model provider seam: how the plugin finds what to deploy (``pytest_servebench.provider``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest

from pytest_servebench import provider as provider_module
from pytest_servebench.provider import (
    ENV,
    GROUP,
    ModelInfo,
    ModelProvider,
    ProviderError,
    get_provider,
    model_info,
)


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(provider_module, "_cached", {})
    monkeypatch.delenv(ENV, raising=False)
    yield


def test_the_studies_models_are_the_installed_provider() -> None:
    names = {ep.name for ep in metadata.entry_points(group=GROUP)}
    assert names == {"targets"}
    provider = get_provider()
    assert isinstance(provider, ModelProvider)
    assert "mobilenet_v2" in provider.models()
    assert model_info(provider, "albert_base").kind == "text"
    # the image recipe is package data, found beside the provider's code, not by walking up
    assert provider.dockerfile().is_file()
    assert provider.dockerfile().is_relative_to(Path(sys.modules["targets"].__file__ or "").parent)


def test_an_unknown_model_lists_the_models() -> None:
    with pytest.raises(LookupError, match=r"unknown model 'nope'; models: mobilenet_v2, "):
        model_info(get_provider(), "nope")


class _Tiny:
    runtime_module = "tiny.bootstrap"
    handler = "tiny.handler"
    app = "tiny:app"
    http_protocol = None

    def models(self) -> dict[str, ModelInfo]:
        return {"m": ModelInfo("m", "text", "a model")}

    def artifact(self, model: str) -> object:
        raise NotImplementedError

    def contents(self, model: str, *, image: bool = False) -> object:
        raise NotImplementedError

    def write_package(self, model: str, out: Path, *, image: bool = False) -> None:
        raise NotImplementedError

    def cache_dir(self) -> Path:
        return Path("/nonexistent")

    def dockerfile(self) -> Path:
        return Path("/nonexistent")

    def build_command(self, models: object) -> int:
        return 0

    def package_command(self, argv: object) -> int:
        return 0


def test_the_environment_picks_a_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = ModuleType("tiny_provider")
    mod.provider = _Tiny()  # type: ignore[attr-defined]
    mod.factory = _Tiny  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiny_provider", mod)
    monkeypatch.setenv(ENV, "tiny_provider:provider")
    assert get_provider() is mod.provider
    monkeypatch.setattr(provider_module, "_cached", {})
    monkeypatch.setenv(ENV, "tiny_provider:factory")  # a factory is called
    assert isinstance(get_provider(), _Tiny)


@pytest.mark.parametrize(("ref", "message"), [
    ("no_such_module_here:provider", r"does not load: No module named 'no_such_module_here'"),
    ("tiny_provider:missing", r"does not load: .*missing"),
    ("tiny_provider:half", r"is not a model provider: it lacks .*dockerfile"),
])
def test_a_bad_provider_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, ref: str,
                                         message: str) -> None:
    mod = ModuleType("tiny_provider")
    half = type("Half", (), {"runtime_module": "x", "handler": "x", "app": "x",
                             "http_protocol": None, "models": lambda self: {}})()
    mod.half = half  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiny_provider", mod)
    monkeypatch.setenv(ENV, ref)
    with pytest.raises(ProviderError, match=message):
        get_provider()


def test_no_provider_or_several_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    def none(group: str) -> list[metadata.EntryPoint]:
        return []

    monkeypatch.setattr(metadata, "entry_points", none)
    with pytest.raises(ProviderError, match=r"no model provider is installed: install "
                                            r"pytest-servebench\[targets\]"):
        get_provider()

    def two(group: str) -> list[metadata.EntryPoint]:
        return [metadata.EntryPoint("a", "a:p", GROUP), metadata.EntryPoint("b", "b:p", GROUP)]

    monkeypatch.setattr(metadata, "entry_points", two)
    with pytest.raises(ProviderError, match=rf"several model providers are installed \(a, b\): "
                                            rf"choose one with {ENV}"):
        get_provider()
