"""``servebench history``: list, show, compare and export the JSON history, read as the
library's typed runs and compared by the same code the plugin uses."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# The columns of ``history export``: comparable metrics of each entry (``Entry.value``).
EXPORT_METRICS = ("p50", "p90", "p99", "mean")


def add_parser(sub: Any) -> None:
    hist = sub.add_parser("history", help="list, show, compare and export the JSON history")
    hist.add_argument("action", choices=("list", "show", "compare", "export"))
    hist.add_argument("ref", nargs="?", default=None, help="run id or name (show, compare)")
    hist.add_argument("--history", default=None, help="history file (.servebench/history.json)")
    hist.add_argument("--baseline", default="last", help="last, a run id or name, or median:N")
    hist.add_argument("--fail", default=None, help="thresholds, e.g. p99:10%%,throughput:-5%%")
    hist.add_argument("--csv", action="store_true", help="export: CSV (the only format)")
    hist.set_defaults(func=history_command)


def history_command(args: argparse.Namespace) -> int:
    from ..compare import DEFAULT_FAIL_SPEC, compare_run, parse_thresholds, render_comparison
    from ..history import DEFAULT_PATH, History

    if args.action in ("show", "compare") and not args.ref:
        raise ValueError(f"history {args.action} needs a run id or name")
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
                     "success_ratio", "throughput", *(f"{m}_s" for m in EXPORT_METRICS),
                     "usd_per_million"])
    for run in runs:
        for e in run.entries:
            writer.writerow([run.run_id, run.created_utc, run.name or "", run.backend,
                             e.nodeid, e.target, e.count, e.success_ratio, e.throughput,
                             *(e.value(m) for m in EXPORT_METRICS),
                             "" if e.cost is None else e.value("usd_per_million")])
    return 0
