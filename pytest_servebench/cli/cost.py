"""``servebench cost`` and ``servebench breakeven``: prices from the price book, through the
platform profiles and the cost functions the plugin uses."""

from __future__ import annotations

import argparse
from typing import Any

from .output import print_summary


def add_parser(sub: Any) -> None:
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
    cost.set_defaults(func=cost_command)

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
    be.set_defaults(func=breakeven_command)


def cost_command(args: argparse.Namespace) -> int:
    from ..cost import server_usd_per_million
    from ..platforms import LambdaProfile, server_profile
    from ..pricebook import load_price_book

    book = load_price_book(args.prices)
    if args.platform == "lambda":
        if args.memory_mb is None or args.duration_ms is None:
            raise ValueError("--platform lambda needs --memory-mb and --duration-ms")
        function = LambdaProfile(args.memory_mb, args.arch, api_gateway=args.api_gateway)
        per_call = function.usd_per_call(args.duration_ms, book)
        basis = f"{function.basis()}, {args.duration_ms:g} ms billed per call"
    else:
        # The library's own messages name keyword arguments; these name the command's flags.
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
    print_summary({"platform": args.platform, "usd_per_request": per_call,
                   "usd_per_1000": per_call * 1e3, "usd_per_million": per_call * 1e6,
                   "basis": basis, "price_book_as_of": book.as_of}, args.json)
    return 0


def breakeven_command(args: argparse.Namespace) -> int:
    from ..cost import breakeven_calls_per_day
    from ..platforms import LambdaProfile, instance_profile
    from ..pricebook import load_price_book

    book = load_price_book(args.prices)
    per_call = LambdaProfile(args.lambda_memory_mb, args.arch,
                             api_gateway=args.api_gateway).usd_per_call(args.duration_ms, book)
    server = instance_profile(args.platform, args.instance, book)
    hourly = server.usd_per_hour(book)
    calls = breakeven_calls_per_day(hourly, per_call)
    print_summary({"instance": server.instance_type, "server_usd_per_day": hourly * 24,
                   "lambda_usd_per_call": per_call, "calls_per_day": calls,
                   "requests_per_s": calls / 86400,
                   "cheaper_above_breakeven": "server", "price_book_as_of": book.as_of},
                  args.json)
    return 0
