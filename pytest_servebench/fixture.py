"""The object behind the ``servebench`` fixture; usable without a pytest session."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Protocol

from .engine import drive, run_sync
from .records import CompletesRecordings
from .result import Result, summarize
from .settings import Settings
from .target import Payload, Target
from .workloads import AnyWorkload, parse_duration_s

if TYPE_CHECKING:
    from .cost import CostEstimate
    from .progress import ProgressCallback
    from .records import Recording
    from .slo import SLO, Verdict

PayloadLike = Payload | bytes | str | Mapping[str, Any] | list[Any] | None


class NoTargetError(RuntimeError):
    pass


class RunGuard(Protocol):
    """Admits a run before it is sent (raising to refuse it) and is told what it cost: the
    aws backend's budget guard. ``admit`` may return a recording to use instead of sending
    anything (a plan: ``servebench aws plan``)."""

    def admit(self, target: Target, workload: AnyWorkload, *,
              time_limit_s: float) -> Recording | None: ...

    def charge(self, result: Result) -> None: ...


@dataclass(frozen=True)
class CheckedResult(Result):
    """A ``Result`` the fixture handed out: it remembers the verdicts of its ``check`` calls,
    passed or failed, so that the session's summary and history show them (a test that checks
    its result itself, without ``@pytest.mark.slo``, is judged by those checks). A copy made
    with ``with_cost`` shares the record."""

    checks: list[Verdict] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def of(cls, result: Result) -> CheckedResult:
        return cls(**{f.name: getattr(result, f.name) for f in fields(Result)})

    def check(self, *slos: str | SLO, point_estimates: bool | None = None) -> list[Verdict]:
        __tracebackhide__ = True
        from .slo import SLOFailure

        try:
            verdicts = super().check(*slos, point_estimates=point_estimates)
        except SLOFailure as exc:
            self.checks.extend(exc.verdicts)
            raise
        self.checks.extend(verdicts)
        return verdicts


class Servebench:
    """Runs workloads against a target and collects the results of one test.

    >>> sb = Servebench(target=HttpTarget("http://127.0.0.1:8080/"))  # doctest: +SKIP
    >>> result = sb.run(ClosedLoop(concurrency=4, requests=200), payload=b"hi")  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        target: Target | None = None,
        settings: Settings | None = None,
        on_result: Callable[[Result], None] | None = None,
        pricer: Callable[[Result], CostEstimate | None] | None = None,
        guard: RunGuard | None = None,
        progress: Callable[[str], ProgressCallback | None] | None = None,
    ) -> None:
        self.target = target
        self.settings = settings or Settings()
        self.results: list[Result] = []
        self._on_result = on_result
        self._pricer = pricer
        self._guard = guard
        # Asked once per run with the workload's name: where that run's live progress goes
        # (None: nowhere).
        self._progress = progress

    def run(
        self,
        workload: AnyWorkload,
        payload: PayloadLike = None,
        *,
        payloads: Sequence[PayloadLike] | None = None,
        target: Target | None = None,
        timeout: float | str | None = None,
        time_limit: float | str | None = None,
        driver: str | None = None,
        workers: int | None = None,
    ) -> Result:
        """Drive ``workload`` against ``target`` (default: the session's ``--target``) and
        return its ``Result``. ``payloads`` are sent round-robin; ``payload`` is one for all.
        ``driver="locust"`` sends them from Locust's master and ``workers`` workers instead of
        this process (default: ``--servebench-driver``, ``--servebench-workers``)."""
        tgt = target or self.target
        if tgt is None:
            raise NoTargetError(
                "no serving target: pass target=... to run(), or choose one with "
                "--target (e.g. --target=http --servebench-url=http://127.0.0.1:8080/)"
            )
        if payload is not None and payloads is not None:
            raise ValueError("give payload= or payloads=, not both")
        items = [Payload.of(p) for p in (payloads if payloads is not None else [payload])]
        s = self.settings
        if driver is not None or workers is not None:
            s = replace(s, driver=driver or s.driver, workers=workers or s.workers)
        timeout_s = parse_duration_s(timeout) if timeout is not None else s.timeout_s
        limit_s = parse_duration_s(time_limit) if time_limit is not None else s.time_limit_s
        stand_in = None
        if self._guard is not None:  # refuses (raises) before anything is sent
            stand_in = self._guard.admit(tgt, workload, time_limit_s=limit_s)
        described = {"str": str(workload), **workload.describe()}
        result: Result | None = None
        if stand_in is not None:  # a plan: nothing is sent, the guard says what it assumed
            recording = stand_in
        else:
            from .xdist import LOCK_MARGIN_S, machine_lock

            # One measurement at a time on this machine (xdist workers, other sessions); the
            # wait is bounded by this run's own bounds plus a margin.
            with machine_lock(limit_s + timeout_s + LOCK_MARGIN_S):
                show = (self._progress(str(workload)) if self._progress is not None
                        else None)
                if s.driver == "locust" and not s.keep_records and not isinstance(
                        tgt, CompletesRecordings):
                    # No records asked for, none to complete: the workers ship histograms
                    # and counts, not every request (the Result is the same type, its
                    # percentiles within the histogram's 1%).
                    result = _run_locust_result(tgt, workload, items, s, timeout_s=timeout_s,
                                                time_limit_s=limit_s, progress=show)
                elif s.driver == "locust":
                    recording = _run_locust(tgt, workload, items, s, timeout_s=timeout_s,
                                            time_limit_s=limit_s, progress=show)
                else:
                    recording = run_sync(lambda: drive(tgt, workload, items,
                                                       timeout_s=timeout_s,
                                                       time_limit_s=limit_s, progress=show))
            if result is None and isinstance(tgt, CompletesRecordings):
                recording = tgt.complete(recording)
        if result is None:
            result = summarize(
                recording, target=tgt.name, target_profile=tgt.describe(), workload=described,
                confidence=s.confidence, point_estimates=s.point_estimates,
                keep_records=s.keep_records, timeout_s=timeout_s,
                late_threshold_s=s.late_threshold_s, max_late_share=s.max_late_share,
            )
        if self._pricer is not None:
            estimate = self._pricer(result)
            if estimate is not None:
                result = result.with_cost(estimate)
        if self._guard is not None:
            self._guard.charge(result)
        result = CheckedResult.of(result)
        self.results.append(result)
        if self._on_result is not None:
            self._on_result(result)
        return result


def _locust_placement(settings: Settings) -> dict[str, Any]:
    """Where the master and workers run: local workers on loopback, or a master bound where
    workers on other machines attach (``locust_master``)."""
    if settings.locust_master is None:
        return {}
    host, _, port = settings.locust_master.rpartition(":")
    return {"master_bind": host, "master_port": int(port), "local_workers": 0}


def _run_locust(target: Target, workload: AnyWorkload, payloads: Sequence[Payload],
                settings: Settings, *, timeout_s: float, time_limit_s: float,
                progress: ProgressCallback | None = None) -> Recording:
    """The run on Locust's master and workers (``locust_driver``), every request's record
    shipped back."""
    from .locust_driver import run_locust

    return run_locust(target, workload, payloads, workers=settings.workers,
                      timeout_s=timeout_s, time_limit_s=time_limit_s,
                      csv_prefix=settings.locust_csv, progress=progress,
                      **_locust_placement(settings))


def _run_locust_result(target: Target, workload: AnyWorkload, payloads: Sequence[Payload],
                       settings: Settings, *, timeout_s: float, time_limit_s: float,
                       progress: ProgressCallback | None = None) -> Result:
    """The run on Locust's master and workers, read from the histograms and counts the
    workers ship (no records)."""
    from .locust_driver import run_locust_result

    return run_locust_result(target, workload, payloads, workers=settings.workers,
                             timeout_s=timeout_s, time_limit_s=time_limit_s,
                             confidence=settings.confidence,
                             point_estimates=settings.point_estimates,
                             late_threshold_s=settings.late_threshold_s,
                             max_late_share=settings.max_late_share,
                             csv_prefix=settings.locust_csv, progress=progress,
                             **_locust_placement(settings))
