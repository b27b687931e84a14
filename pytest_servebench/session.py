"""One benchmark session, without pytest: what the plugin's hooks hand over between them.

The plugin creates a ``BenchSession`` at start-up and delegates to it:

* ``add_result``: the plugin's own ``pytest_servebench_result`` hook. A result is collected
  under its test's node id; its history entry needs the test's SLO verdicts, which exist only
  once the test body has run, so it waits;
* ``end_test``: the test's call is over: each collected result is judged against the test's
  ``@pytest.mark.slo`` bounds and becomes a history ``Entry`` (a result whose identity the test
  already produced gets the next ``repeat`` key); records are written when asked for;
* ``worker_output`` / ``add_worker_output``: xdist workers hand their entries to the
  controller, which alone compares and saves;
* ``finish``: compare with the baseline and save one run to the history; True when the session
  must fail (a regression, a policy set to fail, an unusable history);
* ``summary``: the lines of the terminal summary.

>>> from pathlib import Path
>>> session = BenchSession(SessionOptions(history_path=Path("h.json"), save=False))
>>> session.end_test("t.py::test_x", bounds=[], error=None) is None  # it produced no result
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .compare import Comparison
    from .cost import ServerBill
    from .history import Entry, History, Run
    from .result import Result
    from .slo import SLOFailure, Verdict

Policy = Literal["warn", "fail", "pass"]
Severity = Literal["info", "warning", "error"]
Colour = Literal["red", "yellow", "green"]


@dataclass(frozen=True, kw_only=True)
class SessionOptions:
    """What the command line asked of the session (see ``plugin.pytest_addoption``)."""

    history_path: Path
    compare: str | None = None  # a baseline reference: last, median:N, a run id or name
    thresholds: str | None = None  # None: compare.DEFAULT_FAIL_SPEC
    no_baseline: Policy = "warn"
    inconclusive: Policy = "warn"
    save: bool = True
    run_name: str | None = None
    keep: int | None = None  # None: history.DEFAULT_KEEP
    records_dir: Path | None = None
    report_path: Path | None = None  # --servebench-report: the HTML report


@dataclass(frozen=True)
class Message:
    severity: Severity
    text: str


@dataclass(frozen=True)
class SummaryLine:
    """A line of the terminal summary; a heading is written as a separator."""

    text: str
    heading: bool = False
    colour: Colour | None = None


class BenchSession:
    """The session's results, entries, comparison and messages (see the module docstring)."""

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        # One history entry per result: the summary table, the comparison and the saved run
        # are all derived from these.
        self.entries: list[Entry] = []
        self.comparison: Comparison | None = None
        self.messages: list[Message] = []
        self._pending: dict[str, list[Result]] = {}
        self.saved: Run | None = None  # the run added to the history, once it is

    # --- per test ---------------------------------------------------------------------------

    def add_result(self, nodeid: str, result: Result) -> None:
        """Collect a result of the test ``nodeid`` until its call ends (``end_test``)."""
        self._pending.setdefault(nodeid, []).append(result)

    def forget(self, nodeid: str) -> None:
        """Drop what a test left uncollected (results from its teardown, or from a setup that
        failed before its call)."""
        self._pending.pop(nodeid, None)

    def end_test(self, nodeid: str, *, bounds: Sequence[str],
                 error: BaseException | None) -> SLOFailure | None:
        """Judge the test's results against its SLO ``bounds`` and make their entries.
        Without bounds, an ``SLOFailure`` the test raised itself (``result.check``) gives the
        verdicts. Returns the failure for the bounds not met, if any."""
        results = self._pending.pop(nodeid, [])
        if not results:
            return None
        from .history import entry_key, identity, make_entry
        from .slo import SLOFailure

        failed: list[Verdict] = []
        seen: dict[str, int] = {}  # a workload run twice against one target: each has its key
        for result in results:
            # The test's own ``result.check`` calls (the fixture's results remember them).
            own: list[Verdict] = list(getattr(result, "checks", ()))
            verdicts: list[Verdict] = []
            if bounds:
                try:
                    verdicts = result.check(*bounds)
                except SLOFailure as exc:
                    verdicts, failed = exc.verdicts, failed + exc.failed
            if own:
                verdicts = [*verdicts, *own]
            elif not bounds and isinstance(error, SLOFailure):  # raised by other means
                verdicts = error.verdicts
            backend = backend_of(result)
            key = entry_key(identity(nodeid, result.target, result.target_profile, backend,
                                     result.workload))
            repeat = seen.get(key, 0)
            seen[key] = repeat + 1
            self.entries.append(make_entry(nodeid, result, verdicts, backend, repeat=repeat))
        if self.options.records_dir is not None:
            _write_records(self.options.records_dir, nodeid, results)
        return SLOFailure(failed, failed) if failed else None

    # --- xdist ------------------------------------------------------------------------------

    def worker_output(self) -> list[dict[str, Any]]:
        """A worker's entries, for the controller (``add_worker_output``)."""
        return [e.to_json() for e in self.entries]

    def add_worker_output(self, entries: Iterable[Mapping[str, Any]]) -> None:
        from .history import Entry

        self.entries.extend(Entry.from_json(e) for e in entries)

    # --- the end ----------------------------------------------------------------------------

    def finish(self, *, metadata: Callable[[], Mapping[str, Any]] = dict) -> bool:
        """Compare (when asked) and save (unless told not to); ``metadata`` is asked for the
        saved run's metadata. True when the session must fail."""
        if not self.entries:
            if self.options.report_path is not None:
                self.messages.append(Message("warning", "--servebench-report: this session "
                                                        "measured nothing; no report written"))
            return False
        from .history import History, HistoryError

        history = History.at(self.options.history_path)
        failed = False
        try:
            if self.options.compare:
                failed = self._compare(history, self.options.compare)
            if self.options.save:
                self._save(history, metadata())
        except HistoryError as exc:
            self.messages.append(Message("error", f"history: {exc}"))
            failed = True
        if self.options.report_path is not None:
            failed = not self._report(history, self.options.report_path) or failed
        return failed

    def _report(self, history: History, path: Path) -> bool:
        """Write the HTML report of this run, with the trends of the history's runs before
        it; False (and a message) when it cannot be written."""
        from .history import HistoryError, new_run
        from .htmlreport import write_report

        try:
            runs = history.runs()
        except HistoryError:  # already reported: the report shows this run alone
            runs = []
        current = self.saved or new_run(self.entries, backend=",".join(
            sorted({e.backend for e in self.entries})))
        at = next((i for i, r in enumerate(runs) if r.run_id == current.run_id), None)
        if at is None:  # not saved (--servebench-no-save): reported all the same
            runs, at = [*runs, current], len(runs)
        try:
            write_report(path, runs, run_index=at, comparison=self.comparison,
                         records_dir=self.options.records_dir)
        except (OSError, ValueError) as exc:
            self.messages.append(Message("error", f"--servebench-report: {path}: {exc}"))
            return False
        self.messages.append(Message("info", f"report: {path}"))
        return True

    def _warn_or_fail(self, policy: Policy, text: str) -> bool:
        if policy == "fail":
            self.messages.append(Message("error", text))
            return True
        if policy == "warn":
            self.messages.append(Message("warning", text))
        return False

    def _compare(self, history: History, ref: str) -> bool:
        from .compare import DEFAULT_FAIL_SPEC, compare_run, parse_thresholds
        from .history import fingerprint_id, machine_fingerprint

        try:
            thresholds = parse_thresholds(self.options.thresholds or DEFAULT_FAIL_SPEC)
            cmp = compare_run(self.entries, history.runs(), ref=ref, thresholds=thresholds,
                              machine_id=fingerprint_id(machine_fingerprint()))
        except (ValueError, LookupError) as exc:
            self.messages.append(Message("error", f"--servebench-compare: {exc}"))
            return True
        self.comparison = cmp
        failed = bool(cmp.regressions)
        if cmp.machine_differs:
            self.messages.append(Message(
                "warning", "the baseline was measured on a different machine (CPU, cores or "
                           "memory differ): compare with care"))
        inconclusive = cmp.inconclusive
        if inconclusive:
            text = (f"{len(inconclusive)} comparison(s) inconclusive: the data could show "
                    "neither a regression nor its absence (see the reasons above)")
            if self.options.inconclusive == "fail":
                text += " [--servebench-compare-inconclusive=fail]"
            failed = self._warn_or_fail(self.options.inconclusive, text) or failed
        if cmp.no_baseline:
            missing = len(cmp.no_baseline)
            total = missing + cmp.compared
            text = (f"{missing} result(s) have no baseline ({ref}) in {history.path}; they "
                    "were not compared")
            if 2 * missing > total:
                text = (f"MOST RESULTS WERE NOT COMPARED: {missing} of {total} have no "
                        f"baseline ({ref}) in {history.path}. A first run has none; otherwise "
                        "the tests, targets or workloads changed since the baseline (its key: "
                        "test id, target name and shape, backend, workload)")
            failed = self._warn_or_fail(self.options.no_baseline, text) or failed
        return failed

    def _save(self, history: History, metadata: Mapping[str, Any]) -> None:
        from .history import DEFAULT_KEEP, new_run

        backends = sorted({e.backend for e in self.entries})
        run = new_run(self.entries, backend=",".join(backends), name=self.options.run_name,
                      metadata=metadata)
        keep = self.options.keep
        history.append(run, keep=DEFAULT_KEEP if keep is None else keep)
        self.saved = run
        self.messages.append(Message(
            "info", f"saved run {run.run_id}" + (f" ({run.name})" if run.name else "")
                    + f" with {len(self.entries)} result(s) to {history.path}"))

    def summary(self, *, width: int | None = None, verbose: bool = False,
                bills: Sequence[ServerBill] = ()) -> list[SummaryLine]:
        """The results table (at most ``width`` columns, default 120; ``verbose``: the wide
        table), the servers' bills (``bills``: those of servers already terminated, launch to
        termination; the others as far as the results know them), the comparison and the
        messages."""
        lines: list[SummaryLine] = []
        if self.entries or bills:
            from .report import DEFAULT_WIDTH, render_bills, render_summary

            if self.entries:
                lines.append(SummaryLine("servebench summary", heading=True))
                lines += [SummaryLine(text) for text in render_summary(
                    self.entries, width=width or DEFAULT_WIDTH, verbose=verbose)]
            billed = render_bills(self.entries, bills=bills, width=width or DEFAULT_WIDTH)
            if billed:
                lines.append(SummaryLine("servebench server bills", heading=True))
                lines += [SummaryLine(text) for text in billed]
        cmp = self.comparison
        if cmp is not None:
            from .compare import render_comparison

            lines.append(SummaryLine(f"servebench compare (baseline: {cmp.reference})",
                                     heading=True))
            if cmp.changes:
                lines += [SummaryLine(text) for text in render_comparison(cmp)]
            lines.append(SummaryLine(
                f"{cmp.compared} result(s) compared, {len(cmp.no_baseline)} without a "
                f"baseline; metrics: {cmp.tally()}"))
            n, undecided = len(cmp.regressions), len(cmp.inconclusive)
            if n:
                lines.append(SummaryLine(f"{n} regression(s)", colour="red"))
            else:
                lines.append(SummaryLine(
                    "no regression shown" + (f" ({undecided} inconclusive)" if undecided
                                             else ""),
                    colour="yellow" if undecided else "green"))
        colours: dict[Severity, Colour | None] = {"error": "red", "warning": "yellow",
                                                  "info": None}
        lines += [SummaryLine(f"servebench {m.severity}: {m.text}", colour=colours[m.severity])
                  for m in self.messages]
        return lines


def backend_of(result: Result) -> str:
    """The backend a result was measured on, as its target's profile names it."""
    profile = result.target_profile
    return str(profile.get("backend") or profile.get("kind") or "unknown")


def _write_records(directory: Path, nodeid: str, results: Sequence[Result]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in nodeid)
    for i, result in enumerate(results):
        (directory / f"{safe}.{i}.csv").write_text(result.records_csv())
