"""The ``servebench`` console command. Subcommands register here, one function each."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _load(args: argparse.Namespace) -> int:
    from .backends.http import HttpTarget
    from .fixture import Servebench
    from .metrics import LATENCY_STATS
    from .settings import Settings
    from .workloads import ClosedLoop, OpenLoop

    if args.rate is not None:
        workload: ClosedLoop | OpenLoop = OpenLoop(
            rate=args.rate, duration=args.duration or 10.0, arrival=args.arrival, seed=args.seed)
    else:
        workload = ClosedLoop(concurrency=args.concurrency, requests=args.requests,
                              duration=args.duration if args.requests is None else None)
    body = args.data.encode() if args.data is not None else b""
    sb = Servebench(target=HttpTarget(args.url),
                    settings=Settings(timeout_s=args.timeout, keep_records=False))
    r = sb.run(workload, payload=body)
    summary = {
        "workload": str(workload), "count": r.count, "errors": dict(r.errors),
        "success_ratio": r.success_ratio, "throughput": r.throughput,
        **{f"{name}_s": getattr(r.latency, name).value for name in LATENCY_STATS},
        "timed_out": r.censored,
    }
    if r.schedule_lag is not None:
        summary["lag_p99_s"] = r.schedule_lag.p99_s
        summary["late"] = r.schedule_lag.late
    if not r.valid:
        summary["INVALID"] = r.invalid_reason
    _print(summary, args.json)
    code = 0
    if args.slo:
        from .slo import SLOFailure

        try:
            for verdict in r.check(*args.slo):
                print(verdict.line())
        except SLOFailure as exc:
            print(exc, file=sys.stderr)
            code = 1
    return code


def _print(data: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data))
        return
    for key, value in data.items():
        if isinstance(value, float):
            value = f"{value:.6g}"
        print(f"{key:>18}: {value}")


def _cost(args: argparse.Namespace) -> int:
    from .cost import server_usd_per_million
    from .platforms import LambdaProfile, server_profile
    from .pricebook import load_price_book

    book = load_price_book(args.prices)
    if args.platform == "lambda":
        if args.memory_mb is None or args.duration_ms is None:
            raise ValueError("--platform lambda needs --memory-mb and --duration-ms")
        function = LambdaProfile(args.memory_mb, args.arch, api_gateway=args.api_gateway)
        per_call = function.usd_per_call(args.duration_ms, book)
        basis = f"{function.basis()}, {args.duration_ms:g} ms billed per call"
    else:
        if args.throughput is None:
            raise ValueError(f"--platform {args.platform} needs --throughput (requests/s)")
        if args.platform in ("ec2", "sagemaker") and not args.instance:
            raise ValueError(f"--platform {args.platform} needs --instance")
        if args.platform == "fargate" and (args.vcpu is None or args.memory_gb is None):
            raise ValueError("--platform fargate needs --vcpu and --memory-gb")
        server = server_profile(args.platform, instance_type=args.instance, vcpu=args.vcpu,
                                memory_gb=args.memory_gb, arch=args.arch, book=book)
        hourly = server.usd_per_hour(book)
        per_call = server_usd_per_million(hourly, args.throughput) / 1e6
        basis = f"{server.basis()} at ${hourly:g}/h serving {args.throughput:g} req/s"
    _print({"platform": args.platform, "usd_per_request": per_call,
            "usd_per_1000": per_call * 1e3, "usd_per_million": per_call * 1e6,
            "basis": basis, "price_book_as_of": book.as_of}, args.json)
    return 0


def _breakeven(args: argparse.Namespace) -> int:
    from .cost import breakeven_calls_per_day
    from .platforms import LambdaProfile, instance_profile
    from .pricebook import load_price_book

    book = load_price_book(args.prices)
    per_call = LambdaProfile(args.lambda_memory_mb, args.arch,
                             api_gateway=args.api_gateway).usd_per_call(args.duration_ms, book)
    server = instance_profile(args.platform, args.instance, book)
    hourly = server.usd_per_hour(book)
    calls = breakeven_calls_per_day(hourly, per_call)
    _print({"instance": server.instance_type, "server_usd_per_day": hourly * 24,
            "lambda_usd_per_call": per_call, "calls_per_day": calls,
            "requests_per_s": calls / 86400,
            "cheaper_above_breakeven": "server", "price_book_as_of": book.as_of}, args.json)
    return 0


def _history(args: argparse.Namespace) -> int:
    from .compare import DEFAULT_FAIL_SPEC, compare_run, parse_thresholds, render_comparison
    from .history import DEFAULT_PATH, History

    history = History.at(args.history or DEFAULT_PATH)
    runs = history.runs()

    def find(ref: str) -> int:
        for i, r in enumerate(runs):
            if ref in (r.run_id, r.name):
                return i
        raise ValueError(f"no run {ref!r} in {history.path}")

    if args.action == "list":
        for run in runs:
            print(f"{run.run_id}  {run.created_utc}  {run.name or '-':<12} "
                  f"{run.backend or '?':<8} {len(run.entries):>4} results  "
                  f"{(run.git.get('commit') or '-')[:10]}")
        return 0
    if args.action == "show":
        print(json.dumps(runs[find(args.ref)].to_json(), indent=2))
        return 0
    if args.action == "compare":
        at = find(args.ref)
        cmp = compare_run(runs[at].entries, runs[:at], ref=args.baseline,
                          thresholds=parse_thresholds(args.fail or DEFAULT_FAIL_SPEC))
        for line in render_comparison(cmp):
            print(line)
        return 1 if cmp.regressions else 0
    # export
    import csv

    writer = csv.writer(sys.stdout)
    writer.writerow(["run_id", "created_utc", "name", "backend", "nodeid", "target", "count",
                     "success_ratio", "throughput", "p50_s", "p90_s", "p99_s", "mean_s",
                     "usd_per_million"])
    for run in runs:
        for e in run.entries:
            writer.writerow([run.run_id, run.created_utc, run.name or "", run.backend,
                             e.nodeid, e.target, e.count, e.success_ratio, e.throughput,
                             *(e.latency_s[stat].value for stat in ("p50", "p90", "p99", "mean")),
                             "" if e.cost is None else e.cost.usd_per_million])
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from targets.registry import get

    from .functions.api import is_loopback

    get(args.target)  # an unknown name is a usage error before anything starts
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
    uvicorn.run("targets.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, access_log=False,
                http="targets.app:BoundedHttpProtocol")
    return 0


def _build(args: argparse.Namespace) -> int:
    from targets.build import main as build_main

    return build_main(list(args.targets))


def _package(args: argparse.Namespace) -> int:
    from targets.package import main as package_main

    argv = list(args.targets) + (["--out", args.out] if args.out else []) + \
        (["--json"] if args.json else [])
    return package_main(argv)


def _lambda(args: argparse.Namespace) -> int:
    import os
    import shlex
    import signal
    import threading

    from targets.registry import get

    from .backends.local import model_environment
    from .backends.local.functions import ProcessLauncher
    from .backends.local.processes import new_owner
    from .backends.local.shaping import Shaper
    from .functions.api import PlatformServer, is_loopback
    from .functions.platform import FunctionConfig
    from .functions.sigv4 import Credentials

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
        spec = get(args.target)
        config = FunctionConfig(  # validates memory, concurrency and timeout before it starts
            name=args.name or args.target, target=args.target, memory_mb=args.memory_mb,
            timeout_s=args.timeout, reserved_concurrency=args.reserved_concurrency,
            provisioned_concurrency=args.provisioned_concurrency, keep_alive_s=args.keep_alive,
            parallel_init=args.parallel_init, environment=model_environment(args.target))
    credentials = chosen or Credentials.generate()
    from .backends.local.sweep import sweep_dead_runs

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


def _base_image(args: argparse.Namespace) -> int:
    from .backends.docker.images import build_base_image

    image_id = build_base_image(args.tag, suite=args.suite, mirror=args.mirror)
    print(f"{args.tag} {image_id}")
    return 0


def _image(args: argparse.Namespace) -> int:
    import json

    from .backends.docker.engine import docker_client
    from .backends.docker.images import ensure_image

    client = docker_client()
    for name in args.targets:
        img = ensure_image(name, base=args.base_image, client=client)
        print(json.dumps({"target": name, "tag": img.tag, "base": img.base, "built": img.built,
                          "build_s": round(img.build_s, 1)}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="servebench", description="pytest-servebench tools")
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="drive load against an HTTP endpoint and print statistics")
    load.add_argument("url")
    load.add_argument("-c", "--concurrency", type=int, default=1, help="closed-loop users")
    load.add_argument("-n", "--requests", type=int, default=None, help="closed-loop requests")
    load.add_argument("-d", "--duration", type=float, default=None, help="seconds")
    load.add_argument("-r", "--rate", type=float, default=None,
                      help="open loop at this many requests/s instead of a closed loop")
    load.add_argument("--arrival", choices=("poisson", "constant"), default="poisson")
    load.add_argument("--seed", type=int, default=0)
    load.add_argument("--data", default=None, help="request body (text)")
    load.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    load.add_argument("--slo", action="append", default=[], help="e.g. 'p99 < 50ms'")
    load.add_argument("--json", action="store_true", help="print one JSON object")
    load.set_defaults(func=_load)

    cost = sub.add_parser("cost", help="dollars per request, per 1,000 and per million")
    cost.add_argument("--platform", required=True,
                      choices=("lambda", "ec2", "fargate", "sagemaker"))
    cost.add_argument("--memory-mb", type=int, help="Lambda memory size")
    cost.add_argument("--duration-ms", type=float, help="Lambda duration per call")
    cost.add_argument("--api-gateway", choices=("rest", "http"), default=None)
    cost.add_argument("--instance", help="EC2 instance type (c5.large) or SageMaker's "
                                         "(ml.c5.large, or c5.large when the book has it)")
    cost.add_argument("--vcpu", type=float, help="Fargate task vCPU (0.25, 0.5, 1, 2, 4, 8, 16)")
    cost.add_argument("--memory-gb", type=float,
                      help="Fargate task memory, a size Fargate offers with --vcpu")
    cost.add_argument("--throughput", type=float, help="server requests/s at steady state")
    cost.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64")
    cost.add_argument("--prices", default=None, help="price book JSON (default: bundled)")
    cost.add_argument("--json", action="store_true")
    cost.set_defaults(func=_cost)

    be = sub.add_parser("breakeven", help="calls a day at which a server and a function cost "
                                          "the same")
    be.add_argument("--lambda-memory-mb", type=int, required=True)
    be.add_argument("--duration-ms", type=float, required=True)
    be.add_argument("--instance", required=True, help="instance type, e.g. t2.small")
    be.add_argument("--platform", choices=("ec2", "sagemaker"), default="ec2",
                    help="whose instance type --instance is (default ec2)")
    be.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64")
    be.add_argument("--api-gateway", choices=("rest", "http"), default=None)
    be.add_argument("--prices", default=None)
    be.add_argument("--json", action="store_true")
    be.set_defaults(func=_breakeven)

    hist = sub.add_parser("history", help="list, show, compare and export the JSON history")
    hist.add_argument("action", choices=("list", "show", "compare", "export"))
    hist.add_argument("ref", nargs="?", default=None, help="run id or name (show, compare)")
    hist.add_argument("--history", default=None, help="history file (.servebench/history.json)")
    hist.add_argument("--baseline", default="last", help="last, a run id or name, or median:N")
    hist.add_argument("--fail", default=None, help="thresholds, e.g. p99:10%%,throughput:-5%%")
    hist.add_argument("--csv", action="store_true", help="export: CSV (the only format)")
    hist.set_defaults(func=_history)

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
    serve.set_defaults(func=_serve)

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
    lam.set_defaults(func=_lambda)

    build = sub.add_parser("build", help="build (or find in the cache) the targets' models")
    build.add_argument("targets", nargs="*", help="target names (default: all)")
    build.set_defaults(func=_build)

    package = sub.add_parser("package", help="function package size per target, or write one")
    package.add_argument("targets", nargs="*", help="target names (default: all)")
    package.add_argument("--out", default=None, help="write the package folder (one target)")
    package.add_argument("--json", action="store_true")
    package.set_defaults(func=_package)

    base = sub.add_parser("base-image", help="build the offline base image from Debian packages "
                                             "(debootstrap + docker import; needs root)")
    base.add_argument("--tag", default="servebench/base:bookworm")
    base.add_argument("--suite", default="bookworm", help="Debian suite (its python3 must be "
                                                          "this Python's minor version)")
    base.add_argument("--mirror", default="http://deb.debian.org/debian")
    base.set_defaults(func=_base_image)

    image = sub.add_parser("image", help="build (or find in the cache) the targets' container "
                                         "images")
    image.add_argument("targets", nargs="+", help="target names, e.g. mobilenet_v2")
    image.add_argument("--base-image", default=None,
                       help="BASE_IMAGE (default: python:3.11-slim if present, else the offline "
                            "servebench/base:bookworm)")
    image.set_defaults(func=_image)

    from .backends.aws.commands import add_parser as add_aws_parser

    add_aws_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "history" and args.action in ("show", "compare") and not args.ref:
        parser.error(f"history {args.action} needs a run id or name")
    if args.command == "load" and args.requests is None and args.duration is None \
            and args.rate is None:
        args.requests = 100
    try:
        code: int = args.func(args)
    except (ValueError, LookupError) as exc:  # PriceBookError included
        parser.error(str(exc))
    except RuntimeError as exc:  # HistoryError: reported, the file left as it is
        print(f"servebench: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
