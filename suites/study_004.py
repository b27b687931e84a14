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
