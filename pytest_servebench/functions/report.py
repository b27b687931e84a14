"""Lambda's ``REPORT`` log line: written by the platform, read by every client (local or AWS).

The format is AWS's, field for field, tab-separated (shown here one field a line)::

    REPORT RequestId: 8f5...
    Duration: 102.25 ms
    Billed Duration: 103 ms
    Memory Size: 1024 MB
    Max Memory Used: 71 MB
    Init Duration: 178.96 ms

``Init Duration`` appears on cold starts only. Newer lines may add ``Status`` and ``Error Type``
(a timeout, an out-of-memory kill); ``XRAY`` and SnapStart ``Restore Duration`` fields are read
when present and otherwise ignored.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Protocol

_FIELD = re.compile(r"([A-Za-z][A-Za-z ]*?): ([^\t]+?)(?:\t|$)")
_MS = re.compile(r"^([0-9]+(?:\.[0-9]+)?) ms$")
_MB = re.compile(r"^([0-9]+(?:\.[0-9]+)?) MB$")
LOG_TAIL_BYTES = 4096  # what X-Amz-Log-Result carries, as on AWS


class ReportParseError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class InvocationReport:
    """One REPORT line. Durations in milliseconds, memory in MB, as AWS prints them."""

    request_id: str
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    status: str | None = None
    error_type: str | None = None

    @property
    def cold_start(self) -> bool:
        return self.init_duration_ms is not None

    def line(self) -> str:
        parts = [f"REPORT RequestId: {self.request_id}",
                 f"Duration: {self.duration_ms:.2f} ms",
                 f"Billed Duration: {self.billed_duration_ms} ms",
                 f"Memory Size: {self.memory_size_mb} MB",
                 f"Max Memory Used: {self.max_memory_used_mb} MB"]
        if self.init_duration_ms is not None:
            parts.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        if self.status is not None:
            parts.append(f"Status: {self.status}")
        if self.error_type is not None:
            parts.append(f"Error Type: {self.error_type}")
        return "\t".join(parts) + "\t"


def billed_ms(duration_ms: float, init_duration_ms: float | None = None, *,
              bill_init: bool = True) -> int:
    """Billed duration of one invocation: rounded up to 1 ms (``cost.billed_ms``). Since
    1 August 2025 AWS bills the init phase of on-demand functions too, so a cold start's billed
    time includes it."""
    from ..cost import billed_ms as round_up

    return round_up(duration_ms + ((init_duration_ms or 0.0) if bill_init else 0.0))


def parse_report(line: str) -> InvocationReport:
    """Parse one REPORT line (with or without the trailing tab)."""
    line = line.strip("\r\n")
    if not line.startswith("REPORT "):
        raise ReportParseError(f"not a REPORT line: {line[:80]!r}")
    fields = dict(_FIELD.findall(line[len("REPORT "):]))

    def ms(key: str, required: bool = True) -> float | None:
        raw = fields.get(key)
        if raw is None:
            if required:
                raise ReportParseError(f"REPORT line without {key!r}: {line[:200]!r}")
            return None
        m = _MS.match(raw.strip())
        if not m:
            raise ReportParseError(f"{key}: expected '<number> ms', got {raw!r}")
        return float(m.group(1))

    def mb(key: str) -> int:
        raw = fields.get(key)
        m = _MB.match(raw.strip()) if raw else None
        if not m:
            raise ReportParseError(f"{key}: expected '<number> MB', got {raw!r}")
        return int(float(m.group(1)))

    request_id = fields.get("RequestId", "").strip()
    if not request_id:
        raise ReportParseError(f"REPORT line without a RequestId: {line[:200]!r}")
    duration = ms("Duration")
    billed = ms("Billed Duration")
    assert duration is not None and billed is not None
    return InvocationReport(
        request_id=request_id, duration_ms=duration, billed_duration_ms=int(billed),
        memory_size_mb=mb("Memory Size"), max_memory_used_mb=mb("Max Memory Used"),
        init_duration_ms=ms("Init Duration", required=False),
        status=fields.get("Status"), error_type=fields.get("Error Type"),
    )


def find_report(log: str) -> InvocationReport | None:
    """The last REPORT line in a log tail, or None (a tail cut before it, or no tail at all)."""
    for line in reversed(log.splitlines()):
        if line.startswith("REPORT "):
            return parse_report(line)
    return None


class ReportSource(Protocol):
    """Where an invocation's REPORT line can be read after the fact (CloudWatch Logs)."""

    def reports(self, function: str, request_ids: set[str], *,
                since_unix_s: float) -> dict[str, InvocationReport]:
        """The REPORT lines of ``function``'s invocations among ``request_ids`` since
        ``since_unix_s``, by request id: those found within the source's own bounded wait."""
        ...


def encode_tail(log: str) -> str:
    """``X-Amz-Log-Result``: base64 of the last 4 KB of the invocation's log."""
    raw = log.encode("utf-8", "replace")[-LOG_TAIL_BYTES:]
    return base64.b64encode(raw).decode("ascii")


def decode_tail(header: str) -> str:
    return base64.b64decode(header).decode("utf-8", "replace")
