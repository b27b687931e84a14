"""A target's container image in the run's ECR repository (Fargate tasks, SageMaker models and
Lambda functions over the zip limit all run it).

The repository is made through the control plane (named with the run's prefix, tagged); the
image is pushed through the registry, a separate service: ``DockerPush`` builds the image with
the docker backend's builder (``ensure_image``), logs in with ECR's authorization token, tags
and pushes. ``NoPush`` is the offline stand-in: moto's ECR has no registry to push to, so it
names the image URI a push would give and says in the target's profile that nothing was pushed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol


@dataclass(frozen=True, slots=True)
class RegistryLogin:
    """ECR's authorization for ``docker login``: expires in 12 hours."""

    username: str
    password: str = ""  # never in a repr: it is a credential
    registry: str = ""

    def __repr__(self) -> str:
        return f"RegistryLogin(username={self.username!r}, registry={self.registry!r})"


def registry_login(ecr: Any) -> RegistryLogin:
    data = ecr.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return RegistryLogin(user, password, str(data["proxyEndpoint"]))


@dataclass(frozen=True, slots=True)
class PublishedImage:
    uri: str
    pushed: bool
    note: str | None = None


class ImagePublisher(Protocol):
    """Puts ``target``'s image into ``repository_uri`` (``<acct>.dkr.ecr.<region>...``)."""

    def publish(self, target: str, repository_uri: str, login: RegistryLogin) -> PublishedImage:
        ...


class DockerPush:
    """Build (or reuse) the target's image locally and push it (needs Docker)."""

    def publish(self, target: str, repository_uri: str, login: RegistryLogin) -> PublishedImage:
        from ..docker.engine import docker_client
        from ..docker.images import ensure_image

        client = docker_client()
        image = ensure_image(target, client=client)
        tag = image.tag.rsplit(":", 1)[-1]
        local = client.images.get(image.tag)
        local.tag(repository_uri, tag=tag)
        client.login(username=login.username, password=login.password,
                     registry=login.registry)
        for line in client.images.push(repository_uri, tag=tag, stream=True, decode=True,
                                       auth_config={"username": login.username,
                                                    "password": login.password}):
            if isinstance(line, dict) and line.get("error"):
                raise RuntimeError(f"pushing {repository_uri}:{tag}: {line['error']}")
        return PublishedImage(f"{repository_uri}:{tag}", pushed=True)


class NoPush:
    """What a push would name, without pushing (moto's ECR has no registry)."""

    NOTE = ("image not pushed: the control plane is not AWS and its ECR has no registry; the "
            "repository, its tags and the login were made, the push was not")

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []  # (target, uri), for the tests to check

    def publish(self, target: str, repository_uri: str, login: RegistryLogin) -> PublishedImage:
        if not login.password:
            raise RuntimeError("ECR gave no authorization token")
        uri = f"{repository_uri}:{target.replace('_', '-')}"
        self.published.append((target, uri))
        return PublishedImage(uri, pushed=False, note=self.NOTE)


if TYPE_CHECKING:
    def _both_publish(a: DockerPush, b: NoPush) -> tuple[ImagePublisher, ImagePublisher]:
        return a, b  # mypy checks both against the seam


def create_repository(ecr: Any, *, name: str, tags: list[dict[str, str]]) -> tuple[str, str]:
    """A repository of the run (scan on push off: nothing to scan for in a benchmark); its ARN
    and URI."""
    repo = ecr.create_repository(repositoryName=name, tags=tags,
                                 imageTagMutability="MUTABLE")["repository"]
    return str(repo["repositoryArn"]), str(repo["repositoryUri"])
