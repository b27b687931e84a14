"""Models built on this machine (``targets.build``, cached), shipped with a function's or a
server's code as a local path: the local backend's ``ArtifactSource``."""

from __future__ import annotations

from typing import Any


def built_artifact(target: str) -> Any:
    """``target``'s model file, built once and cached (``targets.build.Artifact``)."""
    from targets.build import ensure
    from targets.registry import get

    spec = get(target)
    return ensure(spec.model, spec.runtime)


def model_environment(target: str) -> dict[str, str]:
    """Build (or find in the cache) the target's artifact here, so that sandboxes and servers
    only load it, as a deployed package would."""
    return {"SERVEBENCH_MODEL_PATH": str(built_artifact(target).path)}


class BuiltModels:
    """Each model built here and given to sandboxes and servers by its path."""

    def packaged(self, target: str) -> dict[str, str]:
        return model_environment(target)

    def artifact(self, target: str) -> Any:
        return built_artifact(target)


__all__ = ["BuiltModels", "built_artifact", "model_environment"]
