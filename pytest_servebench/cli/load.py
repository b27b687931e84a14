"""``servebench load``: drive load against an HTTP endpoint and print statistics.

The body is ``--data TEXT``, ``--data @FILE`` (``@-``: standard input) or one of the target
payload helpers by name (``--payload jpeg:224``); ``--content-type`` and ``--header`` set what
goes with it. A run longer than a couple of seconds shows its progress on standard error. The
exit status is 1 when every request failed (the failures named by kind and count) or an
``--slo`` is not met.
"""

from __future__ import annotations

import argparse
import math
import mimetypes
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .output import print_summary

if TYPE_CHECKING:
    from ..target import Payload

# --payload NAME[:ARG]: what the studies' provider makes (targets/provider.py).
PAYLOAD_HELP = ("jpeg[:W[xH]] (a W x H JPEG, default 224x224), jpeg-size:SIZE (a JPEG of about "
                "SIZE bytes, e.g. 500KB, 2MB), text[:N] (N sample texts, sent in turn, default 16)")


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
    body = load.add_mutually_exclusive_group()
    body.add_argument("--data", default=None, metavar="TEXT|@FILE",
                      help="request body: text, or @FILE for a file's bytes (@- reads stdin)")
    body.add_argument("--payload", default=None, metavar="NAME[:ARG]",
                      help="a body made by the model provider; the studies' provider makes "
                           f"{PAYLOAD_HELP}")
    load.add_argument("--content-type", default=None, metavar="TYPE",
                      help="the body's media type (default: from --payload, the file's "
                           "extension, text/plain for text)")
    load.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                      help="a request header (repeatable)")
    load.add_argument("--method", default="POST")
    load.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    load.add_argument("--driver", choices=("inprocess", "locust"), default="inprocess",
                      help="who sends: this process (default) or Locust's master and workers")
    load.add_argument("--workers", type=int, default=1,
                      help="Locust workers on this machine (--driver locust; default 1)")
    load.add_argument("--slo", action="append", default=[], help="e.g. 'p99 < 50ms'")
    load.add_argument("--json", action="store_true", help="print one JSON object")
    load.add_argument("--wait-for", type=float, default=0.0, metavar="SECONDS",
                      help="first wait up to SECONDS for the endpoint to accept connections "
                           "(a server just started in the background)")
    load.add_argument("--no-progress", action="store_true",
                      help="no progress line on standard error")
    load.set_defaults(func=load_command)


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` as a pair; ``ValueError`` for anything else.

    >>> parse_header("Authorization: Bearer abc")
    ('Authorization', 'Bearer abc')
    """
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
        raise ValueError(f"--header {text!r}: write it as 'Name: value'")
    return name.strip(), value.strip()


def make_payloads(args: argparse.Namespace) -> list[Payload]:
    """The bodies ``--data`` / ``--payload`` ask for, with ``--content-type`` applied."""
    from ..target import Payload

    items: list[Payload]
    if args.payload is not None:
        name, _, arg = args.payload.partition(":")
        # The model provider's payload helpers (the studies' provider: targets.payloads),
        # asked for only here, as an optional member of the provider.
        from ..provider import get_provider

        make = getattr(get_provider(), "payload", None)
        if make is None:
            raise ValueError("--payload: the model provider offers no payloads; "
                             "send --data @FILE instead")
        try:
            items = [Payload(body, ctype) for body, ctype in make(name, arg)]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--payload {args.payload!r}: {exc}") from None
    elif args.data is not None and args.data.startswith("@"):
        source = args.data[1:]
        if source == "-":
            items = [Payload(sys.stdin.buffer.read())]
        else:
            path = Path(source)
            if not path.is_file():
                raise ValueError(f"--data @{source}: no such file")
            guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            items = [Payload(path.read_bytes(), guessed)]
    elif args.data is not None:
        items = [Payload(args.data.encode(), "text/plain; charset=utf-8")]
    else:
        items = [Payload(b"")]
    if args.content_type:
        items = [Payload(p.body, args.content_type) for p in items]
    return items


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
    headers = dict(parse_header(h) for h in args.header)
    items = make_payloads(args)
    if args.wait_for > 0:
        wait_until_listening(args.url, timeout_s=args.wait_for)
    if not any(p.body for p in items) and args.method.upper() in ("POST", "PUT", "PATCH"):
        print("servebench load: the request body is empty (give --data or --payload)",
              file=sys.stderr)
    sb = Servebench(target=HttpTarget(args.url, method=args.method.upper(), headers=headers),
                    settings=Settings(timeout_s=args.timeout, keep_records=False,
                                      driver=args.driver, workers=args.workers),
                    progress=None if args.no_progress else _progress)
    r = sb.run(workload, payloads=items)
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
    if args.json:  # strict JSON: what was not measured is null, not NaN
        summary = {k: None if isinstance(v, float) and not math.isfinite(v) else v
                   for k, v in summary.items()}
    print_summary(summary, args.json)
    code = 0
    if r.count and r.ok_count == 0:
        print(f"servebench load: every request failed ({r.count} of {r.count}): "
              f"{r.errors_text()}", file=sys.stderr)
        code = 1
    elif r.errors:
        print(f"servebench load: {r.count - r.ok_count} of {r.count} requests failed: "
              f"{r.errors_text()}", file=sys.stderr)
    if args.slo:
        from ..slo import SLOFailure

        try:
            for verdict in r.check(*args.slo):
                print(verdict.line())
        except SLOFailure as exc:
            print(exc, file=sys.stderr)
            code = 1
    return code


def wait_until_listening(url: str, *, timeout_s: float) -> float:
    """Wait until ``url``'s host accepts a TCP connection (a refused or reset connection means
    "not yet"); the seconds waited, or ``waiting.ReadinessTimeout`` (a RuntimeError)."""
    import socket
    from urllib.parse import urlsplit

    from ..waiting import wait_for

    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)

    def accepts() -> bool:
        with socket.create_connection((host, port), timeout=1.0):
            return True

    return wait_for(accepts, timeout_s=timeout_s, interval_s=0.2, what=f"{host}:{port}",
                    retry_on=(ConnectionRefusedError, ConnectionResetError, TimeoutError))


def _progress(workload: str) -> Callable[[Any], None]:
    from ..progress import ProgressLine

    err = sys.stderr
    tty = err.isatty()

    def write(text: str) -> None:
        err.write(("\r\x1b[2K" + text) if tty else text + "\n")
        err.flush()

    def clear() -> None:
        err.write("\r\x1b[2K")
        err.flush()

    return ProgressLine(write, tty=tty, label=f"load {workload}", clear=clear)
