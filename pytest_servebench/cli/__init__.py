"""The ``servebench`` console command: one module per command group, each with an
``add_parser(sub)`` and its command functions, which call the library (the plugin never
imports this package).

- ``load``: drive load against an HTTP endpoint
- ``cost``: ``cost``, ``breakeven``
- ``history``: ``history list|show|compare|export``
- ``serve``: a model's HTTP app
- ``lambda_``: the local Lambda platform
- ``build``: ``build``, ``package``, ``base-image``, ``image``
- ``report``: the HTML report of a run
- ``aws``: from the aws backend (``backends/aws/commands.py``)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import build, cost, history, lambda_, load, report, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="servebench", description="pytest-servebench tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (load, cost, history, serve, lambda_, build, report):
        group.add_parser(sub)

    from ..backends.aws.commands import add_parser as add_aws_parser

    add_aws_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except (ValueError, LookupError) as exc:  # PriceBookError included
        parser.error(str(exc))
    except RuntimeError as exc:  # HistoryError: reported, the file left as it is
        print(f"servebench: {exc}", file=sys.stderr)
        return 2
    return code

