"""The local backend, the embedded default: everything runs on this machine as processes, with
no Docker and no cloud.

- ``function(...)``: a function on the local Lambda platform (the official Runtime Interface
  Emulator per sandbox, Lambda's Invoke API on loopback).
- ``server(...)``: the target's HTTP app under uvicorn, shaped like an EC2 instance type, a
  Fargate task size or a SageMaker instance.

Both return targets for ``servebench.run``. ``close()`` stops everything they started. It is
the platform backend (``backend.PlatformBackend``) built from process parts: sandboxes and
servers as process groups in cgroups (where the machine allows), models built here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...platforms import SERVER_PLATFORMS
from .artifacts import BuiltModels, model_environment
from .backend import PLATFORM_SUPPLIED, PlatformBackend
from .processes import new_owner
from .shaping import Shaper

if TYPE_CHECKING:
    from ...functions.sandbox import Launcher


class LocalBackend(PlatformBackend):
    """The platform backend with process parts (a construction: it overrides nothing)."""

    def __init__(self, *, shaper: Shaper | None = None) -> None:
        from ..base import Sandboxes
        from .server import ProcessServers

        shaper = shaper or Shaper()
        owner = new_owner()

        def launcher() -> Launcher:  # made when the function platform starts, in its thread
            from .functions import ProcessLauncher

            return ProcessLauncher(owner=owner, shaper=shaper)

        self.shaper = shaper
        super().__init__("local", owner=owner, sandboxes=Sandboxes(launcher),
                         servers=ProcessServers(owner=owner, shaper=shaper),
                         artifacts=BuiltModels(), limits=shaper)


__all__ = ["PLATFORM_SUPPLIED", "SERVER_PLATFORMS", "LocalBackend", "PlatformBackend",
           "model_environment"]
