"""The ``servebench`` console command. Subcommands register here, one function each."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _load(args: argparse.Namespace) -> int:
    from .backends.http import HttpTarget
    from .fixture import Servebench
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
        **{f"{name}_s": getattr(r.latency, name).value
           for name in ("p50", "p90", "p99", "p999", "mean", "max")},
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:>14}: {value:.6g}" if isinstance(value, float) else f"{key:>14}: {value}")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "load" and args.requests is None and args.duration is None \
            and args.rate is None:
        args.requests = 100
    try:
        code: int = args.func(args)
    except ValueError as exc:
        parser.error(str(exc))
    return code


if __name__ == "__main__":
    sys.exit(main())
