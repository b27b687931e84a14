"""REPORT lines from CloudWatch Logs, for invocations whose log tail lacked one.

The Invoke API's tail is the last 4 KB of the invocation's log: a handler that logs more than
that after its work (or a platform that sends no tail) leaves the REPORT line out, and with it
the init, billed duration and memory of that request. Lambda writes the same line to the
function's log group, a few seconds later. ``CloudWatchReports`` reads them there with
``FilterLogEvents`` (one paginated query per poll over the run's time range, not one call per
request), waiting a bounded time for late lines; what is still missing then stays missing, and
the result says how many durations it priced.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ...functions.report import InvocationReport, ReportParseError, parse_report

_REQUEST_ID = re.compile(r"^REPORT RequestId: (\S+)")
PATTERN = '"REPORT RequestId"'


class CloudWatchReports:
    """``ReportSource`` over a Logs client: ``reports(function, ids, since_unix_s=...)``."""

    def __init__(self, logs: Any, *, timeout_s: float = 60.0, interval_s: float = 2.0) -> None:
        if not timeout_s >= 0 or not interval_s > 0:
            raise ValueError("timeout_s >= 0 and interval_s > 0")
        self.logs = logs
        self.timeout_s = timeout_s
        self.interval_s = interval_s

    def _scan(self, group: str, wanted: set[str], since_ms: int,
              found: dict[str, InvocationReport]) -> None:
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": since_ms,
                                  "filterPattern": PATTERN}
        while True:
            page = self.logs.filter_log_events(**kwargs)
            for event in page.get("events", []):
                message = str(event.get("message", "")).strip("\n")
                m = _REQUEST_ID.match(message)
                if m is None or m.group(1) not in wanted or m.group(1) in found:
                    continue
                try:
                    found[m.group(1)] = parse_report(message)
                except ReportParseError:
                    continue  # a line we cannot read is as good as a missing one
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                return
            kwargs["nextToken"] = token

    def reports(self, function: str, request_ids: set[str], *,
                since_unix_s: float) -> dict[str, InvocationReport]:
        """The REPORT lines of ``request_ids`` in ``/aws/lambda/<function>`` since
        ``since_unix_s`` (less a minute of clock skew), polling until all are found or
        ``timeout_s`` has passed."""
        wanted = {r for r in request_ids if r}
        found: dict[str, InvocationReport] = {}
        if not wanted:
            return found
        group = f"/aws/lambda/{function}"
        since_ms = int((since_unix_s - 60) * 1000)
        deadline = time.monotonic() + self.timeout_s
        while True:
            self._scan(group, wanted, since_ms, found)
            if len(found) == len(wanted) or time.monotonic() >= deadline:
                return found
            time.sleep(min(self.interval_s, max(0.0, deadline - time.monotonic())))


__all__ = ["PATTERN", "CloudWatchReports"]
