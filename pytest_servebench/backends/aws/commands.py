"""``servebench aws ...``: the account-side commands (sweep leftovers of dead runs, plan what
a session would cost)."""

from __future__ import annotations

import argparse
import re
import time

from ...workloads import parse_duration_s

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_age_s(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``1d`` (a bare number is seconds)."""
    m = _AGE.match(text)
    if m is None:
        try:
            return parse_duration_s(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an age like 30m, 2h or 1d, not {text!r}") from None
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    aws = sub.add_parser("aws", help="the aws backend's account-side commands")
    cmds = aws.add_subparsers(dest="aws_command", required=True)
    sweep = cmds.add_parser(
        "sweep", help="remove what runs left in the account (found by their servebench tags)")
    sweep.add_argument("--older-than", type=parse_age_s, default=parse_age_s("2h"),
                       metavar="AGE", help="only runs created longer ago than this (default 2h, "
                                           "so a run in progress elsewhere is spared)")
    sweep.add_argument("--run-id", default=None,
                       help="only this run's resources, whatever their age")
    sweep.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    sweep.add_argument("--region", default=None)
    sweep.add_argument("--profile", default=None)
    sweep.set_defaults(func=sweep_command)
    plan = cmds.add_parser(
        "plan", help="what the tests would cost on AWS, deploying and sending nothing (runs "
                     "pytest with --servebench-backend=aws --servebench-aws-plan)")
    plan.add_argument("paths", nargs="*", default=["suites/"], help="test paths (suites/)")
    plan.add_argument("--target", default="lambda", help="the --target to plan (lambda)")
    plan.add_argument("--budget-usd", type=float, default=1.0,
                      help="the budget to hold the plan against (1.00)")
    plan.add_argument("--full", action="store_true",
                      help="the suites' full sizes (--servebench-full)")
    plan.set_defaults(func=plan_command)


def plan_command(args: argparse.Namespace) -> int:
    """The plan through pytest, in a process of its own (the tests are collected and run as
    the user's session would run them)."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "pytest", *args.paths, "--servebench-backend=aws",
            "--servebench-aws-plan", f"--target={args.target}", "-q", "-p", "no:randomly",
            f"--servebench-aws-budget-usd={args.budget_usd}"]
    if args.full:
        argv.append("--servebench-full")
    done = subprocess.run(argv, check=False)
    # Every planned test is reported skipped ("planned"): pytest's 0 or 5 (none ran) are fine.
    return 0 if done.returncode in (0, 5) else done.returncode


def sweep_command(args: argparse.Namespace) -> int:
    from . import make_session
    from .sweep import find_leftovers, sweep

    session = make_session(args.profile, args.region)
    clients: dict[str, object] = {}

    def client(service: str) -> object:
        if service not in clients:
            clients[service] = session.client(service)
        return clients[service]

    older = None if args.run_id else args.older_than
    found = find_leftovers(client, run_id=args.run_id, older_than_s=older)
    now = time.time()
    for left in found:
        age = left.age_s(now)
        shown = "age unknown" if age is None else f"{age / 3600:.1f} h old"
        print(f"{'would remove' if args.dry_run else 'removing'} {left.resource.kind:<10} "
              f"{left.resource.name}  (run {left.run_id}, {shown})")
    if not found:
        print("nothing to sweep" + (f" for run {args.run_id}" if args.run_id else
                                    f" older than {args.older_than / 3600:g} h"))
        return 0
    if args.dry_run:
        return 0
    failures = sweep(client, found)
    for left, exc in failures:
        print(f"could not remove {left.resource.kind} {left.resource.name}: {exc}")
    print(f"removed {len(found) - len(failures)} of {len(found)}")
    return 1 if failures else 0
