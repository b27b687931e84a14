"""The studies' models as pytest-servebench's model provider (entry point
``servebench.providers: targets = targets.provider:provider``).

Everything here is imported lazily: the plugin loads this module only when a backend or a command
needs a model, and the build (torch) only when a model must be built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_servebench.provider import ModelInfo

if TYPE_CHECKING:
    from .build import Artifact
    from .package import Contents

HERE = Path(__file__).resolve().parent


class TargetsProvider:
    """The six study models (``targets.registry``), their packages and their image."""

    runtime_module = "targets.bootstrap"
    handler = "targets.handler.handler"
    app = "targets.app:create_app"
    http_protocol = "targets.app:BoundedHttpProtocol"

    # The payload helpers by name, for `servebench load --payload NAME[:ARG]` (an optional
    # member of a provider: the command asks for it with getattr).
    payload_help = ("jpeg[:W[xH]] (a W x H JPEG, default 224x224), jpeg-size:SIZE (a JPEG of "
                    "about SIZE bytes, e.g. 500KB, 2MB), text[:N] (N sample texts, sent in "
                    "turn, default 16)")

    def payload(self, name: str, arg: str) -> list[tuple[bytes, str]]:
        """Bodies and their media types; ``ValueError`` for a name or argument it lacks."""
        from . import payloads

        if name == "jpeg":
            width, _, height = (arg or "224").lower().partition("x")
            w = int(width)
            return [(payloads.jpeg(w, int(height) if height else w), "image/jpeg")]
        if name == "jpeg-size":
            if not arg:
                raise ValueError("jpeg-size needs a size, e.g. jpeg-size:500KB")
            low = arg.strip().lower()
            scale = next((s for u, s in (("kb", 1000), ("mb", 1000_000), ("b", 1))
                          if low.endswith(u)), 1)
            number = low.rstrip("kmb") or "0"
            return [(payloads.jpeg_of_size(int(float(number) * scale)), "image/jpeg")]
        if name == "text":
            return [(t.encode(), "text/plain; charset=utf-8")
                    for t in payloads.texts(int(arg or 16))]
        raise ValueError(f"unknown payload {name!r}; one of {self.payload_help}")

    def models(self) -> Mapping[str, ModelInfo]:
        from .registry import TARGETS

        return {name: ModelInfo(name, spec.kind, spec.description)
                for name, spec in TARGETS.items()}

    def artifact(self, model: str) -> Artifact:
        from .build import ensure
        from .registry import get

        spec = get(model)
        return ensure(spec.model, spec.runtime)

    def contents(self, model: str, *, image: bool = False) -> Contents:
        from .package import contents

        return contents(model, image=image)

    def write_package(self, model: str, out: Path, *, image: bool = False) -> None:
        from .package import build

        build(model, out, image=image)

    def cache_dir(self) -> Path:
        from .build import cache_dir

        return cache_dir()

    def dockerfile(self) -> Path:
        return HERE / "images" / "Dockerfile"

    def build_command(self, models: Sequence[str]) -> int:
        from .build import main

        return main(list(models))

    def package_command(self, argv: Sequence[str]) -> int:
        from .package import main

        return main(list(argv))


provider = TargetsProvider()

__all__ = ["TargetsProvider", "provider"]
