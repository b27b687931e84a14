"""``servebench load``: drive load against an HTTP endpoint and print statistics."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .output import print_summary


def add_parser(sub: Any) -> None:
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
    load.set_defaults(func=load_command)


def load_command(args: argparse.Namespace) -> int:
    from ..backends.http import HttpTarget
    from ..fixture import Servebench
    from ..metrics import LATENCY_STATS
    from ..settings import Settings
    from ..workloads import ClosedLoop, OpenLoop

    if args.requests is None and args.duration is None and args.rate is None:
        args.requests = 100
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
    print_summary(summary, args.json)
    code = 0
    if args.slo:
        from ..slo import SLOFailure

        try:
            for verdict in r.check(*args.slo):
                print(verdict.line())
        except SLOFailure as exc:
            print(exc, file=sys.stderr)
            code = 1
    return code
