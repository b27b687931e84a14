"""Where the models a run deploys come from: a ``ModelProvider``.

The plugin measures; it does not know what a model is. A provider names the models it serves,
builds their files, writes their function packages, and says which module runs them (the function
runtime, the handler, the HTTP app) and which Dockerfile packs them into an image. The repository's
``targets`` package is one provider; a team serves its own models by shipping another.

A provider is found through the ``servebench.providers`` entry point group::

    [project.entry-points."servebench.providers"]
    mymodels = "mymodels.provider:provider"

``SERVEBENCH_PROVIDER=module:attribute`` picks one explicitly (for a provider that is not
installed as a distribution, or when several are). Nothing is imported until a backend or a
command needs a model, so the plugin's import stays light.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

GROUP = "servebench.providers"
ENV = "SERVEBENCH_PROVIDER"


class ProviderError(LookupError):
    """No provider, several and none chosen, or one that does not load; the message says what
    to do."""


@dataclass(frozen=True)
class ModelInfo:
    """One model a provider serves."""

    name: str
    kind: str  # the request it takes: "classify" (an image), "detect" (an image), "text"
    description: str


@runtime_checkable
class Built(Protocol):
    """A model file built (or found in the cache) on this machine."""

    @property
    def path(self) -> Path: ...

    @property
    def meta(self) -> Mapping[str, Any]: ...


class Contents(Protocol):
    """What a model's package holds, known before it is written: its cache key and its model."""

    @property
    def model(self) -> Path: ...

    def fingerprint(self) -> dict[str, object]: ...


@runtime_checkable
class ModelProvider(Protocol):
    """What the backends and the command line need from the models' side."""

    @property
    def runtime_module(self) -> str:
        """The function runtime: run as ``python -m <runtime_module> <handler>`` by the
        Runtime Interface Emulator (inside a package or an image, it is the package's own)."""
        ...

    @property
    def handler(self) -> str:
        """The default function handler, ``module.function``."""
        ...

    @property
    def app(self) -> str:
        """The HTTP app a server runs: an ASGI factory, ``module:function``."""
        ...

    @property
    def http_protocol(self) -> str | None:
        """uvicorn's ``http`` class for the app (``module:Class``), or None for uvicorn's."""
        ...

    def models(self) -> Mapping[str, ModelInfo]:
        """Every model this provider serves, by name."""
        ...

    def artifact(self, model: str) -> Built:
        """``model``'s file, built once and cached."""
        ...

    def contents(self, model: str, *, image: bool = False) -> Contents:
        """What ``model``'s function package (``image``: its image's package) would hold."""
        ...

    def write_package(self, model: str, out: Path, *, image: bool = False) -> None:
        """Write ``model``'s package into the folder ``out`` (code, model, distributions): the
        task root of a function, the ``/var/task`` of an image."""
        ...

    def cache_dir(self) -> Path:
        """Where built models are cached; packages are cached beside it."""
        ...

    def dockerfile(self) -> Path:
        """The Dockerfile that turns a package (``task/``) and the emulator into an image."""
        ...

    def build_command(self, models: Sequence[str]) -> int:
        """``servebench build``: build the models named (all when none)."""
        ...

    def package_command(self, argv: Sequence[str]) -> int:
        """``servebench package``: report or write function packages."""
        ...


def model_info(provider: ModelProvider, name: str) -> ModelInfo:
    """``name``'s entry, or a ``LookupError`` that lists the models there are."""
    models = provider.models()
    try:
        return models[name]
    except KeyError:
        raise LookupError(f"unknown model {name!r}; models: {', '.join(models)}") from None


def _load(ref: str, where: str) -> ModelProvider:
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ProviderError(f"the model provider {ref!r} ({where}) does not load: {exc}") \
            from exc
    if inspect.isclass(obj) or inspect.isfunction(obj):
        obj = obj()  # a factory
    if not isinstance(obj, ModelProvider):
        missing = [n for n in _MEMBERS if not hasattr(obj, n)]
        raise ProviderError(f"{ref!r} ({where}) is not a model provider: it lacks "
                            f"{', '.join(missing)}")
    return obj


_MEMBERS = ("runtime_module", "handler", "app", "http_protocol", "models", "artifact", "contents",
            "write_package", "cache_dir", "dockerfile", "build_command", "package_command")
_cached: dict[str, ModelProvider] = {}


def get_provider() -> ModelProvider:
    """The provider of this run: ``$SERVEBENCH_PROVIDER``, else the one installed."""
    chosen = os.environ.get(ENV, "").strip()
    key = chosen or GROUP
    if key in _cached:
        return _cached[key]
    if chosen:
        provider = _load(chosen, f"${ENV}")
    else:
        found = {ep.name: ep for ep in metadata.entry_points(group=GROUP)}
        if not found:
            raise ProviderError(
                "no model provider is installed: install pytest-servebench[targets] (the "
                "studies' models) or a package that registers a 'servebench.providers' entry "
                f"point, or set {ENV}=module:attribute")
        if len(found) > 1:
            raise ProviderError(f"several model providers are installed ({', '.join(found)}): "
                                f"choose one with {ENV}=module:attribute")
        (ep,) = found.values()
        provider = _load(ep.value, f"entry point {ep.name!r}")
    _cached[key] = provider
    return provider


__all__ = ["ENV", "GROUP", "Built", "Contents", "ModelInfo", "ModelProvider", "ProviderError",
           "get_provider", "model_info"]
