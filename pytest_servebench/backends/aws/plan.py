"""What a session would cost on AWS, before anything is deployed: ``servebench aws plan`` (or
``pytest ... --servebench-backend=aws --servebench-aws-plan``) runs the tests with the aws
backend in plan mode: functions are described, not deployed; each run is estimated as the
budget guard estimates it and handed a stand-in of a few requests instead of being sent, so the
test goes on to its next run. What a test asserts on those stand-ins means nothing; a test that
fails on them is reported as planned, not failed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from . import PlannedRun


def plan_lines(planned: Sequence[PlannedRun], *, budget_usd: float) -> list[str]:
    """The plan as the terminal shows it: one line per test (runs, requests, dollars), the
    total, and whether it fits the budget."""
    by_test: dict[str, list[PlannedRun]] = defaultdict(list)
    for run in planned:
        by_test[run.test].append(run)
    width = min(90, max((len(t) for t in by_test), default=4))
    lines = [f"{'test':<{width}}  {'runs':>4}  {'requests':>9}  {'estimate':>10}"]
    for test, runs in by_test.items():
        shown = test if len(test) <= width else "..." + test[-(width - 3):]
        lines.append(f"{shown:<{width}}  {len(runs):>4}  {_requests(runs):>9.0f}  "
                     f"${sum(r.usd for r in runs):>9.4f}")
    total = sum(r.usd for r in planned)
    verdict = "fits" if total <= budget_usd else "EXCEEDS"
    lines.append(f"total: ${total:.4f} for {len(planned)} run(s) of {len(by_test)} test(s): "
                 f"{verdict} the budget of ${budget_usd:.2f} (--servebench-aws-budget-usd); "
                 "each request billed at 1 s of the function's memory (an upper-leaning guess)")
    return lines


def _requests(runs: Iterable[PlannedRun]) -> float:
    return sum(r.requests for r in runs)
