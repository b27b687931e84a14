"""``servebench report``: the HTML report of a run of the history (the newest by default),
compared with the run before it, with the trends of the runs up to it."""

from __future__ import annotations

import argparse
from typing import Any

TREND_RUNS = 20  # htmlreport.figures.TREND_RUNS, repeated so that --help imports nothing


def add_parser(sub: Any) -> None:
    rep = sub.add_parser("report", help="write an HTML report of a run: figures, SLO verdicts, "
                                        "comparison, trends (needs matplotlib: the [report] "
                                        "extra)")
    rep.add_argument("--history", default=None,
                     help="history file (default .servebench/history.json)")
    rep.add_argument("--run", default=None, metavar="REF",
                     help="run id or name to report (default: the newest run)")
    rep.add_argument("--baseline", default="last", metavar="REF",
                     help="compare with: last (the run before it, default), a run id or name, "
                          "median:N, or none")
    rep.add_argument("--fail", default=None, metavar="SPEC",
                     help="the comparison's thresholds, e.g. p99:10%%,throughput:-5%% "
                          "(default: the plugin's)")
    rep.add_argument("--trend-runs", type=int, default=TREND_RUNS, metavar="N",
                     help=f"runs shown in each trend (default {TREND_RUNS})")
    rep.add_argument("--records", default=None, metavar="DIR",
                     help="the run's per-request records (written by --servebench-records "
                          "DIR): latency and drops over time of its scheduled runs")
    rep.add_argument("-o", "--output", required=True, metavar="FILE", help="the HTML file")
    rep.set_defaults(func=report_command)


def report_command(args: argparse.Namespace) -> int:
    from ..compare import DEFAULT_FAIL_SPEC, compare_run, parse_thresholds
    from ..history import DEFAULT_PATH, History, find_run, fingerprint_id
    from ..htmlreport import require_matplotlib, write_report

    require_matplotlib()  # before reading a large history
    if args.trend_runs < 1:
        raise ValueError("--trend-runs needs N >= 1")
    history = History.at(args.history or DEFAULT_PATH)
    runs = history.runs()
    if not runs:
        raise ValueError(f"{history.path} holds no runs: nothing to report")
    at = find_run(runs, args.run)
    comparison = None
    if args.baseline != "none" and at > 0:
        comparison = compare_run(runs[at].entries, runs[:at], ref=args.baseline,
                                 thresholds=parse_thresholds(args.fail or DEFAULT_FAIL_SPEC),
                                 machine_id=fingerprint_id(runs[at].machine))
    path = write_report(args.output, runs, run_index=at, comparison=comparison,
                        trend_runs=args.trend_runs, records_dir=args.records)
    run = runs[at]
    print(f"servebench: wrote {path} (run {run.run_id}, {len(run.entries)} results, "
          f"{path.stat().st_size / 1024:,.0f} KiB)")
    return 0
