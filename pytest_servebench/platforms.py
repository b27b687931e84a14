"""The platforms a model is served on, each as a typed profile: what the platform offers (its
bounds) and how it bills (its pricing rule).

- Lambda: memory 128..10,240 MB, x86_64 or arm64, CPU in proportion to memory (one vCPU at
  1,769 MB); billed per call in GB-seconds (whole milliseconds) plus a request fee.
- EC2: the instance types of the price book, never SageMaker's ``ml.*``; billed per hour.
- SageMaker: ``ml.*`` instance types only; a plain name (``c5.large``) is taken as its ``ml.``
  twin when the price book has one, else refused; billed per hour at SageMaker's rate.
- Fargate: the task sizes AWS offers (vCPU with its memory range); billed per vCPU-hour and
  GB-hour.

The backends build their targets' profiles here, ``cost`` prices results with these rules and
``servebench cost`` takes its options through them: a size a platform does not offer is refused
in one place, with the same words everywhere.

>>> book = load_price_book()
>>> round(LambdaProfile(memory_mb=1024).usd_per_call(630, book) * 1e6, 2)
10.7
>>> sagemaker = instance_profile("sagemaker", "c5.large", book)
>>> sagemaker.instance_type, sagemaker.usd_per_hour(book)
('ml.c5.large', 0.102)
>>> instance_profile("ec2", "c5.large", book).usd_per_hour(book)
0.085
>>> FargateProfile(vcpu=0.25, memory_gb=4)
Traceback (most recent call last):
...
pytest_servebench.platforms.PlatformError: Fargate offers 0.25 vCPU with 0.5, 1 or 2 GB, not 4 GB
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from .pricebook import Arch, PriceBook, load_price_book

__all__ = ["ARCHES", "FARGATE_TASK_SIZES", "LAMBDA_MB_PER_VCPU", "LAMBDA_MEMORY_MB",
           "PLATFORMS", "SERVER_PLATFORMS", "FargateProfile", "InstanceProfile", "LambdaProfile",
           "PlatformError", "Profile", "ServerProfile", "Shape", "billed_ms", "instance_profile",
           "load_price_book", "profile_of", "server_profile"]

PLATFORMS = ("lambda", "ec2", "fargate", "sagemaker")
SERVER_PLATFORMS = ("ec2", "fargate", "sagemaker")
ARCHES: tuple[Arch, ...] = ("x86_64", "arm64")


def machine_arch() -> Arch:
    """This machine's architecture in Lambda's words (``x86_64`` or ``arm64``)."""
    import platform

    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"

LAMBDA_MEMORY_MB = (128, 10240)
LAMBDA_MB_PER_VCPU = 1769
LAMBDA_MAX_VCPU = 6.0
LAMBDA_EPHEMERAL_MB = (512, 10240)
API_GATEWAYS = ("rest", "http")

# Fargate task sizes (Linux) as AWS defines them: vCPU -> the memory sizes (GB) it can have.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html
FARGATE_TASK_SIZES: dict[float, tuple[float, ...]] = {
    0.25: (0.5, 1.0, 2.0),
    0.5: tuple(float(gb) for gb in range(1, 5)),
    1.0: tuple(float(gb) for gb in range(2, 9)),
    2.0: tuple(float(gb) for gb in range(4, 17)),
    4.0: tuple(float(gb) for gb in range(8, 31)),
    8.0: tuple(float(gb) for gb in range(16, 61, 4)),
    16.0: tuple(float(gb) for gb in range(32, 121, 8)),
}


class PlatformError(ValueError):
    """A platform does not offer what was asked for; the message says what it offers."""


def billed_ms(duration_ms: float) -> int:
    """Lambda bills whole milliseconds, rounded up (1.0001 ms is billed as 2 ms)."""
    if duration_ms < 0:
        raise ValueError("a duration cannot be negative")
    # Guard float noise such as 630.0000000001 coming from seconds * 1000.
    return max(1, math.ceil(round(duration_ms, 6)))


@dataclass(frozen=True, slots=True)
class Shape:
    """vCPU (may be fractional) and memory in MB: what a sandbox or a server is limited to."""

    vcpu: float
    memory_mb: int

    @classmethod
    def for_lambda(cls, memory_mb: int) -> Shape:
        """A function's shape: CPU in proportion to its memory size."""
        _check_lambda_memory(memory_mb)
        return cls(vcpu=min(LAMBDA_MAX_VCPU, memory_mb / LAMBDA_MB_PER_VCPU),
                   memory_mb=memory_mb)

    def threads(self, cores: int | None = None) -> int:
        """Inference threads that fit the shape on this machine."""
        cores = cores or len(os.sched_getaffinity(0))
        return max(1, min(cores, math.ceil(self.vcpu - 1e-9)))


def _check_lambda_memory(memory_mb: int) -> None:
    lo, hi = LAMBDA_MEMORY_MB
    if not lo <= memory_mb <= hi:
        raise PlatformError(f"Lambda memory is {lo}..{hi} MB, not {memory_mb}")


def _check_arch(platform: str, arch: str) -> Arch:
    if arch not in ARCHES:
        raise PlatformError(f"{platform} architectures are {' and '.join(ARCHES)}, not "
                            f"{str(arch)[:40]!r}")
    return arch


@dataclass(frozen=True, slots=True)
class LambdaProfile:
    """A Lambda function's size; billed per call."""

    memory_mb: int
    arch: Arch = "x86_64"
    ephemeral_mb: int = 512
    api_gateway: str | None = None  # "rest" or "http" when calls come through API Gateway
    platform: ClassVar[str] = "lambda"

    def __post_init__(self) -> None:
        _check_lambda_memory(self.memory_mb)
        _check_arch("Lambda", self.arch)
        lo, hi = LAMBDA_EPHEMERAL_MB
        if not lo <= self.ephemeral_mb <= hi:
            raise PlatformError(f"Lambda ephemeral storage is {lo}..{hi} MB, not "
                                f"{self.ephemeral_mb}")
        if self.api_gateway is not None and self.api_gateway not in API_GATEWAYS:
            raise PlatformError(f"API Gateway is {' or '.join(API_GATEWAYS)}, not "
                                f"{self.api_gateway!r}")

    @property
    def shape(self) -> Shape:
        return Shape.for_lambda(self.memory_mb)

    def usd_per_call(self, duration_ms: float, book: PriceBook) -> float:
        """One invocation: billed GB-seconds, the request fee, ephemeral storage past the free
        512 MB and, when the call comes through it, API Gateway."""
        seconds = billed_ms(duration_ms) / 1000
        gb = self.memory_mb / 1024
        usd = gb * seconds * book.lambda_usd_per_gb_s(self.arch) + book.lambda_usd_per_request()
        storage_price, free_mb = book.lambda_ephemeral_usd_per_gb_s()
        if self.ephemeral_mb > free_mb:
            usd += (self.ephemeral_mb - free_mb) / 1024 * seconds * storage_price
        if self.api_gateway:
            usd += book.api_gateway_usd_per_request(self.api_gateway)
        return usd

    def basis(self) -> str:
        return f"{self.memory_mb} MB {self.arch}" + (
            f" + API Gateway {self.api_gateway}" if self.api_gateway else "")


@dataclass(frozen=True, slots=True)
class InstanceProfile:
    """An EC2 or SageMaker instance type as the price book describes it; billed per hour."""

    platform: Literal["ec2", "sagemaker"]
    instance_type: str
    vcpu: float
    memory_gib: float
    arch: str = "x86_64"
    gpu: str | None = None

    @property
    def shape(self) -> Shape:
        return Shape(vcpu=self.vcpu, memory_mb=int(self.memory_gib * 1024))

    def usd_per_hour(self, book: PriceBook) -> float:
        return book.instance(self.instance_type).usd_per_hour

    def basis(self) -> str:
        return self.instance_type


@dataclass(frozen=True, slots=True)
class FargateProfile:
    """A Fargate task size; billed per vCPU-hour and GB-hour."""

    vcpu: float
    memory_gb: float
    arch: Arch = "x86_64"
    platform: ClassVar[str] = "fargate"

    def __post_init__(self) -> None:
        sizes = FARGATE_TASK_SIZES.get(float(self.vcpu))
        if sizes is None:
            offered = ", ".join(f"{v:g}" for v in FARGATE_TASK_SIZES)
            raise PlatformError(f"Fargate offers {offered} vCPU, not {self.vcpu:g}")
        if float(self.memory_gb) not in sizes:
            raise PlatformError(f"Fargate offers {self.vcpu:g} vCPU with "
                                f"{_sizes_in_words(sizes)} GB, not {self.memory_gb:g} GB")
        _check_arch("Fargate", self.arch)

    @property
    def shape(self) -> Shape:
        return Shape(vcpu=float(self.vcpu), memory_mb=int(float(self.memory_gb) * 1024))

    def usd_per_hour(self, book: PriceBook) -> float:
        return book.fargate_usd_per_hour(self.vcpu, self.memory_gb, self.arch)

    def basis(self) -> str:
        return f"{self.vcpu:g} vCPU / {self.memory_gb:g} GB {self.arch}"


def _sizes_in_words(sizes: tuple[float, ...]) -> str:
    if len(sizes) <= 3:
        return ", ".join(f"{s:g}" for s in sizes[:-1]) + f" or {sizes[-1]:g}"
    step = sizes[1] - sizes[0]
    return f"{sizes[0]:g}..{sizes[-1]:g}" + (f" in steps of {step:g}" if step != 1 else "")


ServerProfile = InstanceProfile | FargateProfile
Profile = LambdaProfile | InstanceProfile | FargateProfile


def instance_profile(platform: str, instance_type: str, book: PriceBook) -> InstanceProfile:
    """An EC2 (``c5.large``) or SageMaker (``ml.c5.large``) instance type the price book
    offers; a platform refuses the other's names (a plain name is SageMaker's ``ml.`` twin
    when the book has one)."""
    family: Literal["ec2", "sagemaker"]
    if platform == "ec2":
        family = "ec2"
        if instance_type.startswith("ml."):
            raise PlatformError(f"{instance_type} is a SageMaker instance type; EC2's have no "
                                f"'ml.' prefix (e.g. {instance_type.removeprefix('ml.')})")
        name = instance_type
    elif platform == "sagemaker":
        family, name = "sagemaker", instance_type
        if not instance_type.startswith("ml."):
            twin = "ml." + instance_type
            if twin not in book.instance_types("sagemaker"):
                raise PlatformError(
                    f"SageMaker instance types are ml.*: {instance_type!r} is not one, and "
                    f"{book.path} has no {twin} (SageMaker types there: "
                    f"{', '.join(book.instance_types('sagemaker'))})")
            name = twin
    else:
        raise PlatformError(f"instance types are EC2's or SageMaker's, not {platform!r}'s")
    inst = book.instance(name)
    return InstanceProfile(family, name, inst.vcpu, inst.memory_gib, inst.arch, inst.gpu)


def server_profile(platform: str, *, instance_type: str | None = None,
                   vcpu: float | None = None, memory_gb: float | None = None,
                   arch: str = "x86_64", book: PriceBook | None = None) -> ServerProfile:
    """The profile of a server on ``platform``: an instance type (EC2, SageMaker: looked up
    in ``book``, the bundled one by default) or a task size (Fargate, with ``arch``)."""
    if platform not in SERVER_PLATFORMS:
        raise PlatformError(f"server platform is one of {SERVER_PLATFORMS}, not {platform!r}")
    if platform == "fargate":
        if vcpu is None or memory_gb is None:
            raise PlatformError("a Fargate server needs vcpu= and memory_gb=")
        return FargateProfile(float(vcpu), float(memory_gb), _check_arch("Fargate", arch))
    if instance_type is None:
        raise PlatformError(f"an {platform} server needs instance_type=")
    return instance_profile(platform, instance_type, book or load_price_book())


def profile_of(target_profile: Mapping[str, Any], book: PriceBook) -> Profile | None:
    """The platform profile a target's profile (``Target.describe()``, a history entry's)
    names; None when it names no platform this module knows (an ``http`` endpoint)."""
    platform = target_profile.get("platform")
    if platform == "lambda":
        return LambdaProfile(int(target_profile["memory_mb"]),
                             _check_arch("Lambda", target_profile.get("arch", "x86_64")),
                             int(target_profile.get("ephemeral_mb", 512)),
                             target_profile.get("api_gateway"))
    if platform in ("ec2", "sagemaker"):
        return instance_profile(str(platform), str(target_profile["instance_type"]), book)
    if platform == "fargate":
        return FargateProfile(float(target_profile["vcpu"]), float(target_profile["memory_gb"]),
                              _check_arch("Fargate", target_profile.get("arch", "x86_64")))
    return None
