"""``servebench serve``: a model's HTTP app in the foreground (uvicorn)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run a target's HTTP app in the foreground (uvicorn)")
    serve.add_argument("target", help="e.g. mobilenet_v2 (see `servebench build --help`)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1); loopback only unless "
                            "--allow-remote")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--threads", type=int, default=None,
                       help="threads per inference (default: the CPUs available)")
    serve.add_argument("--slots", type=int, default=None,
                       help="inferences run at once per worker (default 1); keep slots x "
                            "threads within the cores")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--header-timeout", type=float, default=10.0,
                       help="seconds a request's line and headers may take to arrive, from the "
                            "connection's start or the previous response (default 10)")
    serve.add_argument("--body-timeout", type=float, default=30.0,
                       help="seconds a request's body may take to arrive (default 30; then 408)")
    serve.add_argument("--allow-remote", action="store_true",
                       help="let --host be an address other machines reach (no authentication)")
    serve.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from ..functions.api import is_loopback
    from ..provider import get_provider, model_info

    provider = get_provider()
    model_info(provider, args.target)  # an unknown name is a usage error before anything starts
    if not is_loopback(args.host) and not args.allow_remote:
        raise ValueError(f"--host {args.host} is not a loopback address: servers bind loopback; "
                         "add --allow-remote to serve other machines (no authentication)")
    for flag, value in (("--header-timeout", args.header_timeout),
                        ("--body-timeout", args.body_timeout)):
        if not value > 0:
            raise ValueError(f"{flag} must be a positive number of seconds, not {value}")
    os.environ["SERVEBENCH_TARGET"] = args.target
    os.environ["SERVEBENCH_HEADER_TIMEOUT_S"] = str(args.header_timeout)
    os.environ["SERVEBENCH_BODY_TIMEOUT_S"] = str(args.body_timeout)
    if args.threads:
        os.environ["SERVEBENCH_THREADS"] = str(args.threads)
    if args.slots:
        os.environ["SERVEBENCH_INFERENCE_SLOTS"] = str(args.slots)
    # The protocol adds a deadline for request heads, which uvicorn lacks (slowloris).
    uvicorn.run(provider.app, factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, access_log=False,
                http=provider.http_protocol or "auto")
    return 0
