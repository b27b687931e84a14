"""pytest-servebench: model-serving benchmarks as assertable pytest suites.

Names are imported on first use so that loading the plugin stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ClosedLoop": "workloads", "OpenLoop": "workloads", "MMPP": "workloads",
    "parse_duration_s": "workloads",
    "Result": "result", "LatencySummary": "result", "ColdStarts": "result",
    "ScheduleLag": "result", "summarize": "result",
    "Estimate": "stats",
    "LatencyHistogram": "histogram",
    "SLO": "slo", "Verdict": "slo", "SLOFailure": "slo", "parse_slo": "slo",
    "Payload": "target", "Reply": "target", "Target": "target", "Client": "target",
    "Servebench": "fixture", "Settings": "settings",
    "HttpTarget": "backends.http",
}

__all__ = [  # noqa: RUF022 - grouped like _EXPORTS
    "ClosedLoop", "OpenLoop", "MMPP", "parse_duration_s",
    "Result", "LatencySummary", "ColdStarts", "ScheduleLag", "summarize",
    "Estimate", "LatencyHistogram", "SLO", "Verdict", "SLOFailure", "parse_slo",
    "Payload", "Reply", "Target", "Client", "Servebench", "Settings", "HttpTarget",
]

if TYPE_CHECKING:
    from .backends.http import HttpTarget
    from .fixture import Servebench
    from .histogram import LatencyHistogram
    from .result import ColdStarts, LatencySummary, Result, ScheduleLag, summarize
    from .settings import Settings
    from .slo import SLO, SLOFailure, Verdict, parse_slo
    from .stats import Estimate
    from .target import Client, Payload, Reply, Target
    from .workloads import MMPP, ClosedLoop, OpenLoop, parse_duration_s


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_servebench' has no attribute {name!r}")
    # Not cached in globals(): the module in sys.modules stays the single source of truth
    # (pytester's in-process runs swap modules between sessions).
    return getattr(importlib.import_module(f".{module}", __name__), name)
