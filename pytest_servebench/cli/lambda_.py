"""``servebench lambda``: the local Lambda platform in the foreground, with one function or
none (Lambda's control plane: CreateFunction with a zip), on loopback unless asked otherwise."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    lam = sub.add_parser("lambda", help="run the local Lambda platform in the foreground: one "
                                        "function, or none and Lambda's control plane "
                                        "(CreateFunction with a zip) on loopback")
    lam.add_argument("target", nargs="?", default=None,
                     help="what the function serves, e.g. mobilenet_v2; none: an empty "
                          "service whose functions are uploaded zips (CreateFunction)")
    lam.add_argument("--port", type=int, default=9000)
    lam.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default 127.0.0.1); loopback only unless "
                          "--allow-remote")
    lam.add_argument("--allow-remote", action="store_true",
                     help="DANGEROUS: let --host be an address other machines reach; anyone "
                          "with the credentials (from AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, required) runs code on this machine, over "
                          "plain HTTP")
    lam.add_argument("--name", default=None, help="function name (default: the target)")
    lam.add_argument("--memory-mb", type=int, default=1024, help="128..10240 (default 1024)")
    lam.add_argument("--timeout", type=float, default=30.0, help="function timeout, s")
    lam.add_argument("--reserved-concurrency", type=int, default=None)
    lam.add_argument("--provisioned-concurrency", type=int, default=0)
    lam.add_argument("--keep-alive", type=float, default=300.0,
                     help="seconds an idle sandbox stays warm (default 300)")
    lam.add_argument("--parallel-init", action="store_true",
                     help="overlap model loading with imports in the handler's init")
    lam.set_defaults(func=lambda_command)


def lambda_command(args: argparse.Namespace) -> int:
    import os
    import shlex
    import signal
    import threading

    from ..backends.local import model_environment
    from ..backends.local.functions import ProcessLauncher
    from ..backends.local.processes import new_owner
    from ..backends.local.shaping import Shaper
    from ..functions.api import PlatformServer, is_loopback
    from ..functions.platform import FunctionConfig
    from ..functions.sigv4 import Credentials
    from ..provider import get_provider, model_info

    # Whoever can sign a request runs code on this machine (a function is code): other hosts
    # only on request, and only with credentials the person chose.
    chosen = Credentials.from_environment()
    if not is_loopback(args.host):
        if not args.allow_remote:
            raise ValueError(f"--host {args.host} is not a loopback address: anyone who reaches "
                             "it could run code here; add --allow-remote (dangerous) to mean it")
        if chosen is None:
            raise ValueError("--allow-remote needs credentials chosen by you in "
                             "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    config = spec = None
    if args.target is not None:  # else an empty service: functions come by CreateFunction
        spec = model_info(get_provider(), args.target)
        config = FunctionConfig(  # validates memory, concurrency and timeout before it starts
            name=args.name or args.target, target=args.target, memory_mb=args.memory_mb,
            timeout_s=args.timeout, reserved_concurrency=args.reserved_concurrency,
            provisioned_concurrency=args.provisioned_concurrency, keep_alive_s=args.keep_alive,
            parallel_init=args.parallel_init, environment=model_environment(args.target))
    credentials = chosen or Credentials.generate()
    from ..backends.local.sweep import sweep_dead_runs

    sweep_dead_runs()  # what killed runs left (never a live run's), as a backend does at start
    shaper, owner = Shaper(), new_owner()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with PlatformServer(lambda: ProcessLauncher(owner=owner, shaper=shaper), host=args.host,
                        port=args.port, credentials=credentials,
                        allow_remote=args.allow_remote) as srv:
        if config is not None:
            srv.deploy(config)
            print(f"function {config.name!r} ({args.target}, {config.memory_mb} MB; "
                  f"{shaper.reason}) at {srv.endpoint_url}", flush=True)
        else:
            s3 = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            print(f"an empty Lambda service ({shaper.reason}) at {srv.endpoint_url}: "
                  "CreateFunction takes zips inline" + (f" or from S3 at {s3}" if s3 else
                  " (S3 code needs AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL)"), flush=True)
        if chosen is None:
            env = (f"AWS_ACCESS_KEY_ID={credentials.access_key_id} "
                   f"AWS_SECRET_ACCESS_KEY={shlex.quote(credentials.secret_access_key)}")
            print(f"  requests are signed with credentials made for this run (set "
                  f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to choose them): {env}",
                  flush=True)
            prefix = env + " "
        else:
            print(f"  requests are signed with the credentials of AWS_ACCESS_KEY_ID "
                  f"({credentials.access_key_id})", flush=True)
            prefix = ""
        if config is not None and spec is not None:
            example = ('{"text": "hi"}' if spec.kind == "text"
                       else '{"image_b64": "<base64 JPEG>"}')
            print(f"  {prefix}aws lambda invoke --endpoint-url {srv.endpoint_url} "
                  f"--function-name {config.name} --cli-binary-format raw-in-base64-out "
                  f"--payload '{example}' --log-type Tail out.json", flush=True)
        else:
            print(f"  {prefix}aws lambda create-function --endpoint-url {srv.endpoint_url} "
                  "--function-name f --runtime python3.11 --handler app.handler --role "
                  "arn:aws:iam::000000000000:role/any --zip-file fileb://f.zip", flush=True)
        stop.wait()
        print("stopping: every sandbox goes with the platform", flush=True)
    return 0
