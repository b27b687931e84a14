"""``servebench build``, ``package``, ``base-image`` and ``image``: the models, function
packages and container images the backends deploy, built ahead of a run."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    build = sub.add_parser("build", help="build (or find in the cache) the targets' models")
    build.add_argument("targets", nargs="*", help="target names (default: all)")
    build.set_defaults(func=build_command)

    package = sub.add_parser("package", help="function package size per target, or write one")
    package.add_argument("targets", nargs="*", help="target names (default: all)")
    package.add_argument("--out", default=None, help="write the package folder (one target)")
    package.add_argument("--json", action="store_true")
    package.set_defaults(func=package_command)

    base = sub.add_parser("base-image", help="build the offline base image from Debian packages "
                                             "(debootstrap + docker import; needs root)")
    base.add_argument("--tag", default="servebench/base:bookworm")
    base.add_argument("--suite", default="bookworm", help="Debian suite (its python3 must be "
                                                          "this Python's minor version)")
    base.add_argument("--mirror", default="http://deb.debian.org/debian")
    base.set_defaults(func=base_image_command)

    image = sub.add_parser("image", help="build (or find in the cache) the targets' container "
                                         "images")
    image.add_argument("targets", nargs="+", help="target names, e.g. mobilenet_v2")
    image.add_argument("--base-image", default=None,
                       help="BASE_IMAGE (default: python:3.11-slim if present, else the offline "
                            "servebench/base:bookworm)")
    image.set_defaults(func=image_command)


def build_command(args: argparse.Namespace) -> int:
    from ..provider import get_provider, model_info

    provider = get_provider()
    for name in args.targets:
        model_info(provider, name)  # an unknown name is a usage error before anything builds
    return provider.build_command(list(args.targets))


def package_command(args: argparse.Namespace) -> int:
    from ..provider import get_provider, model_info

    provider = get_provider()
    for name in args.targets:
        model_info(provider, name)
    argv = list(args.targets) + (["--out", args.out] if args.out else []) + \
        (["--json"] if args.json else [])
    return provider.package_command(argv)


def base_image_command(args: argparse.Namespace) -> int:
    from ..backends.docker.images import build_base_image

    image_id = build_base_image(args.tag, suite=args.suite, mirror=args.mirror)
    print(f"{args.tag} {image_id}")
    return 0


def image_command(args: argparse.Namespace) -> int:
    from ..backends.docker.engine import docker_client
    from ..backends.docker.images import ensure_image

    client = docker_client()
    for name in args.targets:
        img = ensure_image(name, base=args.base_image, client=client)
        print(json.dumps({"target": name, "tag": img.tag, "base": img.base, "built": img.built,
                          "build_s": round(img.build_s, 1)}))
    return 0
