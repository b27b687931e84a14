"""Per-request records read back for the report: ``--servebench-records DIR`` writes each
result of a test as ``DIR/<node id, made safe>.<i>.csv`` (``session``), the i-th result of
the test in the order the history keeps its entries."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .figures import RequestTimeline, entry_label, request_timeline

if TYPE_CHECKING:
    from ..history import Entry


def records_file(directory: Path, nodeid: str, index: int) -> Path:
    """Where the session wrote the ``index``-th result of ``nodeid``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in nodeid)
    return directory / f"{safe}.{index}.csv"


def timelines(directory: Path, entries: Sequence[Entry]) -> dict[str, RequestTimeline]:
    """The timelines of the entries whose records are in ``directory``, by entry key; an
    entry without a file (records not asked for in its run), or whose file holds another
    number of requests (another run's), has none."""
    seen: dict[str, int] = {}
    found = {}
    for entry in entries:
        index = seen.get(entry.nodeid, 0)
        seen[entry.nodeid] = index + 1
        path = records_file(directory, entry.nodeid, index)
        try:
            with path.open(newline="") as f:
                timeline = request_timeline(entry_label(entry), csv.DictReader(f))
        except FileNotFoundError:
            continue
        if len(timeline.sent_s) + len(timeline.dropped_s) == entry.count:
            found[entry.key] = timeline
    return found
