"""The container backend (``--servebench-backend=docker``): the same targets, the same local
Lambda platform and object store as the process backend, but every sandbox and server is a
container of the target's image, limited like the cloud shape it stands for.

- Function sandboxes: one container per sandbox running the Runtime Interface Emulator with
  ``awslambdaric``; memory limit = memory size, CPU = memory / 1,769 MB vCPU. A cold start is a
  container start plus the init phase.
- Servers: the target's HTTP app in a container with the instance type's (or task size's) vCPU
  and memory.
- Images are built from ``targets/images/Dockerfile`` and cached (``images.ensure_image``).
- Every container carries the run's labels; ``close()`` removes them, a reaper process removes
  them if the run dies first, and each new backend sweeps leftovers of dead runs.

Docker and testcontainers are imported when the backend starts, never when the plugin loads.
"""

from __future__ import annotations

from typing import Any

from ..local import LocalBackend
from ..local.shaping import Shape


class DockerBackend(LocalBackend):
    name = "docker"

    def __init__(self, *, base_image: str | None = None) -> None:
        import os

        # Ryuk's image cannot be pulled without a registry; engine.Reaper does its job.
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        from .engine import Reaper, docker_client, sweep_dead_runs

        super().__init__()
        self.client = docker_client()
        self.swept = sweep_dead_runs(self.client)
        self.base_image = base_image
        self._images: dict[str, Any] = {}
        self._reaper: Reaper | None = Reaper(self.owner)

    def image(self, target: str) -> Any:
        """``target``'s image (``images.TargetImage``), built once per key and cached."""
        if target not in self._images:
            from .images import ensure_image

            self._images[target] = ensure_image(target, base=self.base_image,
                                                client=self.client)
        return self._images[target]

    def _launcher(self) -> tuple[Any, dict[str, Any]]:
        from .containers import ContainerLauncher

        images, run_id = self.image, self.owner
        return (lambda: ContainerLauncher(images=images, run_id=run_id)), \
            {"launch_in_executor": True}

    def _describe_shape(self, shape: Shape) -> dict[str, Any]:
        from .containers import describe_limits

        return describe_limits(shape)

    def _model_environment(self, target: str, model_from: str) -> dict[str, str]:
        if model_from == "package":  # the model is in the image, as in a deployed package
            return {"SERVEBENCH_MODEL_PATH": self.image(target).model_path}
        return super()._model_environment(target, model_from)

    def _start_server(self, target: str, *, shape: Shape, workers: int, threads: int | None,
                      slots: int | None, environment: dict[str, str], label: str) -> Any:
        from .containers import ServerContainer

        return ServerContainer(self.image(target), run_id=self.owner, shape=shape,
                               workers=workers, threads=threads, slots=slots,
                               environment=environment, label=label)

    def containers(self) -> list[Any]:
        """This run's containers still on the engine."""
        from .engine import run_containers

        return run_containers(self.client, self.owner)

    def close(self) -> None:
        from .engine import remove_containers, run_containers

        try:
            super().close()
        finally:
            remove_containers(self.client, run_containers(self.client, self.owner))
            if self._reaper is not None:
                self._reaper.close()
                self._reaper = None


__all__ = ["DockerBackend"]
