"""The 004 study's bursty workloads: what the study measured, not something the library knows.

Its figure 3 gives three Markov-modulated workloads by peak rate; each is a two-state
``MMPP`` whose base rate is a quarter of the peak and whose dwell times make the mean rate the
study's requests over its length. Test modules import this file (``suites/`` is on
``sys.path`` for them); ``tests/test_workloads.py`` checks it against the paper.
"""

from __future__ import annotations

from typing import Any

from pytest_servebench import MMPP

# Peak rate (req/s) -> (request count, length in seconds), from the study's figure 3.
WORKLOADS: dict[int, tuple[int, float]] = {40: (15000, 870.0), 120: (15000, 250.0),
                                           200: (18000, 190.0)}


def workload(*, peak: int, time_scale: float = 1.0, rate_scale: float = 1.0, seed: int = 0,
             **kwargs: Any) -> MMPP:
    """The 004 study's workload-40/120/200: two states, a base rate of a quarter of the peak
    and dwell times chosen so the mean rate matches the study's requests/length. Scale time
    and rate down for quick runs; the shape (burst ratio, burst share) is kept.

    >>> w = workload(peak=40, time_scale=0.05, seed=3)
    >>> max(w.rates), round(w.duration_s, 1)
    (40.0, 43.5)
    """
    if peak not in WORKLOADS:
        raise ValueError(f"the 004 study has workloads with peaks {sorted(WORKLOADS)}")
    requests, length_s = WORKLOADS[peak]
    low, high = peak / 4, float(peak)
    mean_rate = requests / length_s
    burst_share = (mean_rate - low) / (high - low)
    dwell_high = 10.0
    dwell_low = dwell_high * (1 - burst_share) / burst_share
    return MMPP(rates=(low * rate_scale, high * rate_scale),
                mean_dwell_s=(dwell_low * time_scale, dwell_high * time_scale),
                duration=length_s * time_scale, seed=seed, **kwargs)


def servers_queue(server_low: Any, server_high: Any, function_high: Any,
                  growth: float) -> tuple[str, str]:
    """The study's "serverless keeps latency flat under bursts where servers queue", decided on
    the tail (``Estimate`` p90s, with 95% intervals) of the server at the lowest and the highest
    peak and of the function at the highest. Returns ``(verdict, why)``, the verdict one of:

    - ``"holds"``: the server's p90 at the highest peak is decidedly above ``growth`` times its
      p90 at the lowest and above the function's at the highest;
    - ``"contradicted"``: it is decidedly below either (the server did not queue, or the
      function queued worse);
    - ``"inconclusive"``: the intervals cannot tell.

    >>> from pytest_servebench.stats import Estimate
    >>> servers_queue(Estimate(0.05, 0.04, 0.06, 400), Estimate(0.9, 0.7, 1.1, 400),
    ...               Estimate(0.08, 0.07, 0.09, 400), 2.0)[0]
    'holds'
    """
    def ms(e: Any) -> str:
        return f"{e.value * 1e3:.4g} ms [{e.low * 1e3:.4g}, {e.high * 1e3:.4g}] (n={e.n})"

    why = (f"the server's p90 at the highest peak {ms(server_high)}, at the lowest "
           f"{ms(server_low)} (x{growth:g} needed), the function's at the highest "
           f"{ms(function_high)}")
    grew = server_high.low > growth * server_low.high
    worse = server_high.low > function_high.high
    if grew and worse:
        return "holds", why
    if server_high.high < growth * server_low.low or server_high.high < function_high.low:
        return "contradicted", why
    return "inconclusive", why
