"""Results built from made-up records, for testing statistics and verdicts without a server."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_servebench.records import Record, Recording
from pytest_servebench.result import Result, summarize
from pytest_servebench.target import Reply


def recording(latencies_s: Sequence[float], *, errors: int = 0,
              cold: Sequence[bool] | None = None, init_s: float | None = None) -> Recording:
    rows = []
    t = 0.0
    for i, lat in enumerate(latencies_s):
        is_cold = None if cold is None else cold[i]
        reply = Reply(ok=True, cold_start=is_cold,
                      init_duration_s=init_s if is_cold else None)
        rows.append(Record(i, False, t, t, t + lat, reply))
        t += 0.001
    for _j in range(errors):
        rows.append(Record(len(rows), False, t, t, t, Reply.failure("http_503")))
        t += 0.001
    end = max(r.done_s for r in rows) if rows else 1.0
    return Recording(tuple(rows), 0.0, 0.0, end, end, 1, False)


def result(latencies_s: Sequence[float], **kwargs: object) -> Result:
    point = bool(kwargs.pop("point_estimates", False))
    timeout_s = float(kwargs.pop("timeout_s", 30.0))  # type: ignore[arg-type]
    rec = recording(latencies_s, **kwargs)  # type: ignore[arg-type]
    return summarize(rec, target="fake", target_profile={}, workload={"str": "fake"},
                     point_estimates=point, timeout_s=timeout_s)
