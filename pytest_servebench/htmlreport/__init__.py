"""The HTML report: one self-contained page of a run's results and figures, drawn from the
history (``pytest --servebench-report=FILE``, ``servebench report``).

- ``figures``: what goes into each figure (pure data, tested without matplotlib);
- ``plots``: the figures drawn by matplotlib as inline SVG (the optional ``report`` extra);
- ``page``: the HTML around them.

Nothing here is imported by the plugin until a report is asked for.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .plots import MissingMatplotlib, require_matplotlib

if TYPE_CHECKING:
    from ..compare import Comparison
    from ..history import Run

__all__ = ["MissingMatplotlib", "render_report", "require_matplotlib", "write_report"]


def render_report(runs: Sequence[Run], *, run_index: int = -1,
                  comparison: Comparison | None = None, trend_runs: int | None = None,
                  records_dir: str | os.PathLike[str] | None = None) -> str:
    """The page for ``runs[run_index]``, with trends from the runs before it and, from
    ``records_dir``, that run's per-request records (``--servebench-records``)."""
    from .figures import TREND_RUNS
    from .page import render

    return render(runs, run_index=run_index, comparison=comparison,
                  trend_runs=TREND_RUNS if trend_runs is None else trend_runs,
                  records_dir=None if records_dir is None else Path(records_dir))


def write_report(path: str | os.PathLike[str], runs: Sequence[Run], *, run_index: int = -1,
                 comparison: Comparison | None = None, trend_runs: int | None = None,
                 records_dir: str | os.PathLike[str] | None = None) -> Path:
    """Render and write the page; a report already at ``path`` is replaced whole (written
    aside, then renamed), never left half-written."""
    text = render_report(runs, run_index=run_index, comparison=comparison,
                         trend_runs=trend_runs, records_dir=records_dir)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
