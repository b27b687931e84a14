"""``servebench history``: list, show, compare and export the JSON history, read as the
library's typed runs and compared by the same code the plugin uses."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..history import Run

# The columns of ``history export``: comparable metrics of each entry (``Entry.value``).
EXPORT_METRICS = ("p50", "p90", "p99", "mean")
EXPORT_FORMATS = ("csv", "github-action-benchmark", "pytest-benchmark")


def add_parser(sub: Any) -> None:
    hist = sub.add_parser("history", help="list, show, compare and export the JSON history")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--history", default=None,
                        help="history file (.servebench/history.json)")
    # One parser per action, so that the run reference may come before or after the options
    # (``history show --history H RUN`` left RUN unread when the action was a choice).
    actions = hist.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[common], help="the runs, one a line")
    listing.add_argument("--json", action="store_true", help="JSON for machines")
    show = actions.add_parser("show", parents=[common], help="one run's results as a table")
    show.add_argument("ref", help="run id or name")
    show.add_argument("--json", action="store_true", help="the run as JSON for machines")
    show.add_argument("-v", "--verbose", action="store_true",
                      help="the wide table (whole test ids, more columns)")
    compare = actions.add_parser("compare", parents=[common],
                                 help="compare a run with a baseline")
    compare.add_argument("ref", help="run id or name")
    compare.add_argument("--baseline", default="last", help="last, a run id or name, or median:N")
    compare.add_argument("--fail", default=None,
                         help="thresholds, e.g. p99:10%%,throughput:-5%%")
    export = actions.add_parser("export", parents=[common], help="every run as CSV, or one "
                                "run for github-action-benchmark or pytest-benchmark")
    export.add_argument("ref", nargs="?", default=None,
                        help="the run to export as JSON (default: the last)")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="csv",
                        help="csv (every run, default), github-action-benchmark "
                             "(customSmallerIsBetter JSON: p50/p99 in ms, $ per million) or "
                             "pytest-benchmark (a pytest-benchmark JSON file, for "
                             "`pytest-benchmark compare`)")
    export.add_argument("--csv", action="store_true", help="CSV (the default format)")
    hist.set_defaults(func=history_command, json=False, verbose=False)


def history_command(args: argparse.Namespace) -> int:
    from ..compare import DEFAULT_FAIL_SPEC, compare_run, parse_thresholds, render_comparison
    from ..history import DEFAULT_PATH, History, find_run

    if args.action in ("show", "compare") and not args.ref:
        raise ValueError(f"history {args.action} needs a run id or name")
    history = History.at(args.history or DEFAULT_PATH)
    runs = history.runs()

    def find(ref: str) -> int:  # the run with that id, or the newest of that name
        try:
            return find_run(runs, ref)
        except LookupError:
            raise ValueError(f"no run {ref!r} in {history.path}") from None

    if args.action == "list":
        if args.json:
            print(json.dumps([{"run_id": r.run_id, "created_utc": r.created_utc,
                               "name": r.name, "backend": r.backend,
                               "results": len(r.entries), "commit": r.git.get("commit")}
                              for r in runs], indent=2))
            return 0
        for run in runs:
            print(f"{run.run_id}  {run.created_utc}  {run.name or '-':<12} "
                  f"{run.backend or '?':<8} {len(run.entries):>4} results  "
                  f"{(run.git.get('commit') or '-')[:10]}")
        return 0
    if args.action == "show":
        run = runs[find(args.ref)]
        if args.json:
            print(json.dumps(run.to_json(), indent=2, allow_nan=False))
            return 0
        for line in show_lines(run, verbose=args.verbose):
            print(line)
        return 0
    if args.action == "compare":
        at = find(args.ref)
        cmp = compare_run(runs[at].entries, runs[:at], ref=args.baseline,
                          thresholds=parse_thresholds(args.fail or DEFAULT_FAIL_SPEC))
        for line in render_comparison(cmp):
            print(line)
        return 1 if cmp.regressions else 0
    # export
    if args.format != "csv" and not args.csv:
        if not runs:
            raise ValueError(f"no runs in {history.path}")
        run = runs[find(args.ref)] if args.ref else runs[-1]
        from ..ci import github_action_benchmark, pytest_benchmark_document

        document: Any = (github_action_benchmark(list(run.entries))
                         if args.format == "github-action-benchmark"
                         else pytest_benchmark_document(run))
        print(json.dumps(document, indent=2, allow_nan=False))
        return 0
    import csv

    writer = csv.writer(sys.stdout)
    writer.writerow(["run_id", "created_utc", "name", "backend", "nodeid", "target", "count",
                     "success_ratio", "throughput", *(f"{m}_s" for m in EXPORT_METRICS),
                     "usd_per_million"])
    for run in runs:
        for e in run.entries:
            writer.writerow([run.run_id, run.created_utc, run.name or "", run.backend,
                             e.nodeid, e.target, e.count, e.success_ratio, e.throughput,
                             *(e.value(m) for m in EXPORT_METRICS),
                             "" if e.cost is None else e.value("usd_per_million")])
    return 0


def show_lines(run: Run, *, verbose: bool = False) -> list[str]:
    """A run as people read it: what it ran on, then the session's summary table."""
    import shutil

    from ..report import DEFAULT_WIDTH, render_summary

    git = run.git
    commit = str(git.get("commit") or "-")[:10] + (" (dirty)" if git.get("dirty") else "")
    machine = run.machine
    head = [f"run {run.run_id}" + (f" ({run.name})" if run.name else "")
            + f"  {run.created_utc}  backend {run.backend or '?'}  commit {commit}",
            f"machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
            f"{machine.get('memory_gib', '?')} GiB, {machine.get('os', '?')}; "
            f"python {run.python or machine.get('python', '?')}",
            f"{len(run.entries)} result(s)", ""]
    width = min(DEFAULT_WIDTH, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)
    return head + render_summary(list(run.entries), width=width, verbose=verbose)
