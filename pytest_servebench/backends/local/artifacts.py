"""Models built on this machine by the model provider (cached), shipped with a function's or a
server's code as a local path: the local backend's ``ArtifactSource``."""

from __future__ import annotations

from ...provider import Built, get_provider


def built_artifact(model: str) -> Built:
    """``model``'s file, built once and cached by the provider (a build shows that it is
    working after a couple of seconds; a cached model shows nothing)."""
    from ...progress import working

    with working(f"model {model}: building (or reading the cache)"):
        return get_provider().artifact(model)


def model_environment(model: str) -> dict[str, str]:
    """Build (or find in the cache) the model's file here, so that sandboxes and servers
    only load it, as a deployed package would."""
    return {"SERVEBENCH_MODEL_PATH": str(built_artifact(model).path)}


class BuiltModels:
    """Each model built here and given to sandboxes and servers by its path."""

    def packaged(self, target: str) -> dict[str, str]:
        return model_environment(target)

    def artifact(self, target: str) -> Built:
        return built_artifact(target)


__all__ = ["BuiltModels", "built_artifact", "model_environment"]
