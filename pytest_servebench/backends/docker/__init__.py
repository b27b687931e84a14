"""The container backend (``--servebench-backend=docker``): the same targets, the same local
Lambda platform and object store as the process backend, but every sandbox and server is a
container of the target's image, limited like the cloud shape it stands for.

- Function sandboxes: one container per sandbox running the Runtime Interface Emulator with
  ``awslambdaric``; memory limit = memory size, CPU = memory / 1,769 MB vCPU. A cold start is a
  container start plus the init phase.
- Servers: the target's HTTP app in a container with the instance type's (or task size's) vCPU
  and memory.
- Images are built from the model provider's Dockerfile and cached (``images.ensure_image``).
- Every container carries the run's labels; ``close()`` removes them, a reaper process removes
  them if the run dies first, and each new backend sweeps leftovers of dead runs.

It is the platform backend (``local.backend.PlatformBackend``) built from container parts.
Docker and testcontainers are imported when the backend starts, never when the plugin loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..local.backend import PlatformBackend

if TYPE_CHECKING:
    from ...functions.sandbox import Launcher
    from .engine import Reaper
    from .images import TargetImage


class DockerBackend(PlatformBackend):
    """The platform backend with container parts (a construction: it overrides nothing; it
    adds what only an engine has, ``image`` and ``containers``)."""

    def __init__(self, *, base_image: str | None = None) -> None:
        import os

        # Ryuk's image cannot be pulled without a registry; engine.Reaper does its job.
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        from ..base import Sandboxes
        from ..local.processes import new_owner
        from .containers import ContainerServers, DockerLimits, ImageModels
        from .engine import Reaper, docker_client, sweep_dead_runs

        self.client = docker_client()
        self.base_image = base_image
        self._images: dict[str, TargetImage] = {}
        owner = new_owner()
        images = self.image

        def launcher() -> Launcher:  # made when the function platform starts, in its thread
            from .containers import ContainerLauncher

            return ContainerLauncher(images=images, run_id=owner)

        super().__init__("docker", owner=owner, sandboxes=Sandboxes(launcher, launch_blocks=True),
                         servers=ContainerServers(images=images, run_id=owner),
                         artifacts=ImageModels(images), limits=DockerLimits(),
                         on_close=[self._remove_containers])
        self.swept = sweep_dead_runs(self.client)
        self._reaper: Reaper | None = Reaper(self.owner)

    def image(self, target: str) -> TargetImage:
        """``target``'s image (``images.TargetImage``), built once per key and cached."""
        if target not in self._images:
            from .images import ensure_image

            self._images[target] = ensure_image(target, base=self.base_image,
                                                client=self.client)
        return self._images[target]

    def containers(self) -> list[Any]:
        """This run's containers still on the engine."""
        from .engine import run_containers

        return run_containers(self.client, self.owner)

    def _remove_containers(self) -> None:
        """What ``close`` does after the servers and sandboxes have stopped: remove whatever
        container of the run is left, then let the reaper go."""
        from .engine import remove_containers, run_containers

        try:
            remove_containers(self.client, run_containers(self.client, self.owner))
        finally:
            if self._reaper is not None:
                self._reaper.close()
                self._reaper = None


__all__ = ["DockerBackend"]
