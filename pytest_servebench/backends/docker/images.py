"""Images: one per model, built from the model provider's Dockerfile (package data of
``targets``: ``targets/images/Dockerfile``) with a generated context (the model's package and the
emulator), cached by a key over everything that goes in;
and an offline base image built from Debian packages for machines without a registry.

Nothing is rebuilt when nothing changed: the image's tag is the key, and a tag that exists is
used as it is, without making a context.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...provider import get_provider
from .engine import LABEL_PREFIX, docker_client

PUBLIC_BASE = "python:3.11-slim"
OFFLINE_BASE = "servebench/base:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
IMAGE_REPO = "servebench/target"
TASK_ROOT = "/var/task"


class ImageError(RuntimeError):
    """An image could not be found or built; the message says what to do."""


def _has_image(client: Any, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def resolve_base_image(client: Any, requested: str | None = None) -> str:
    """The base image to build on: ``requested`` (``--servebench-base-image`` or
    ``$SERVEBENCH_BASE_IMAGE``) if given; else the public Python slim image if it is here; else
    the offline base (``servebench base-image``) if it is here; else the public one, which
    Docker will try to pull."""
    chosen = requested or os.environ.get("SERVEBENCH_BASE_IMAGE")
    if chosen:
        return chosen
    for ref in (PUBLIC_BASE, OFFLINE_BASE):
        if _has_image(client, ref):
            return ref
    return PUBLIC_BASE


@dataclass(frozen=True)
class TargetImage:
    target: str
    tag: str
    base: str
    model_file: str
    built: bool  # False when the cached image was used
    build_s: float

    @property
    def model_path(self) -> str:
        """Where the model lies inside the image."""
        return f"{TASK_ROOT}/model/{self.model_file}"


def image_key(target: str, base_id: str, rie: Path) -> tuple[str, str]:
    """(key, model file name) for ``target``'s image on a base of id ``base_id``."""
    provider = get_provider()
    what = provider.contents(target, image=True)
    doc = {"dockerfile": provider.dockerfile().read_text(), "base": base_id,
           "rie": rie.stat().st_size, "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
           **what.fingerprint()}
    key = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    return key, what.model.name


def ensure_image(target: str, *, base: str | None = None, rie: Path | None = None,
                 client: Any = None) -> TargetImage:
    """``target``'s image, built if no image of the same key exists yet."""
    import time

    from ...functions.rie import find_rie

    client = client or docker_client()
    base_ref = resolve_base_image(client, base)
    base_here = _has_image(client, base_ref)
    base_id = client.images.get(base_ref).id if base_here else base_ref  # else Docker pulls it
    rie = rie or find_rie()
    key, model_file = image_key(target, base_id, rie)
    tag = f"{IMAGE_REPO}-{target.replace('_', '-')}:{key}"
    if _has_image(client, tag):
        return TargetImage(target, tag, base_ref, model_file, built=False, build_s=0.0)
    from ...progress import working

    t0 = time.perf_counter()
    with working(f"image of {target}: building on {base_ref}"):
        _build(target, tag, base_ref, rie, model_file=model_file, base_here=base_here)
    return TargetImage(target, tag, base_ref, model_file, built=True,
                       build_s=time.perf_counter() - t0)


def _build(target: str, tag: str, base: str, rie: Path, *, model_file: str,
           base_here: bool) -> None:
    from testcontainers.core.image import DockerImage

    provider = get_provider()
    ctx = Path(tempfile.mkdtemp(prefix=f"servebench-image-{target}-"))
    try:
        provider.write_package(target, ctx / "task", image=True)
        shutil.copy2(rie, ctx / "aws-lambda-rie")
        shutil.copy2(provider.dockerfile(), ctx / "Dockerfile")
        minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
        image = DockerImage(path=ctx, tag=tag, clean_up=False,
                            # The image names its target and model: `docker run IMAGE serve`
                            # (SageMaker's contract) needs no environment.
                            buildargs={"BASE_IMAGE": base, "PYTHON_MINOR": minor,
                                       "TARGET": target, "MODEL_FILE": model_file},
                            labels={f"{LABEL_PREFIX}target": target}, network_mode="host",
                            rm=True, forcerm=True)
        try:
            image.build()
        except Exception as exc:
            log = "".join(str(part.get("stream") or part.get("error") or "")
                          for part in getattr(exc, "build_log", None) or ()
                          if isinstance(part, dict))
            log = "\n".join(log.strip().splitlines()[-15:])
            hint = f"\n{log}" if log else ""
            if not base_here:
                hint += (f"\n{base} is not on this machine and could not be pulled. "
                         f"No registry here? Build the offline base image with "
                        f"`servebench base-image` (tag {OFFLINE_BASE}) and run again.")
            raise ImageError(f"building the image of {target} on {base} failed: {exc}{hint}") \
                from exc
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def build_base_image(tag: str = OFFLINE_BASE, *, suite: str = "bookworm",
                     mirror: str = DEBIAN_MIRROR, client: Any = None) -> str:
    """A minimal Debian with python3, made from Debian's packages alone (``debootstrap``) and
    imported with ``docker import``: the base image for machines that reach no registry.
    Needs root and debootstrap. Returns the image id."""
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed (apt-get install -y debootstrap)")
    client = client or docker_client()
    work = Path(tempfile.mkdtemp(prefix="servebench-base-"))
    root = work / "rootfs"
    try:
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3", suite, str(root), mirror],
            capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageError(f"debootstrap failed ({proc.returncode}):\n"
                             + (proc.stdout + proc.stderr)[-3000:])
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                     "usr/share/man", "usr/share/locale", "usr/share/info"):
            shutil.rmtree(root / junk, ignore_errors=True)
        tar = work / "rootfs.tar"
        with tarfile.open(tar, "w") as out:
            for entry in sorted(root.iterdir()):
                out.add(entry, arcname=entry.name)
        repo, _, version = tag.partition(":")
        client.api.import_image_from_file(
            str(tar), repository=repo, tag=version or "latest",
            changes=['ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
                     'ENV LANG=C.UTF-8', 'CMD ["python3"]'])
        image_id: str = client.images.get(tag).id
        return image_id
    finally:
        shutil.rmtree(work, ignore_errors=True)
