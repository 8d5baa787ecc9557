"""A window's latency figures from its sorted records (exact mode: `metrics.latency_stats:
exact`, and `auto` on short runs).

Each window's mean and percentiles are read from its latencies in sorted order, so the
twin sorts every window's records once (numpy's sort: several times faster than numba's on
these arrays, and a sort's output is the same whatever the algorithm) and keeps the sorted
copies: the run's percentiles and latency histogram are read from them
(`kisim.core.records.LatencyRecords`) instead of from every request sorted again.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def window_stats_ms(b, out):  # type: ignore[no-untyped-def]
    """mean, p50, p95, p99 (ms) of the sorted latencies `b` (s), into `out`.

    The numbers the twin has always reported: the mean is the sum of the sorted values in
    order over n, and percentiles interpolate linearly at (n - 1) q / 100 (numpy's default
    method; the arithmetic kept exactly as recorded, so timelines stay bit for bit)."""
    n = b.shape[0]
    out[0] = b.sum() / n * 1e3
    for k, q in enumerate((50.0, 95.0, 99.0)):
        h = (n - 1) * q / 100.0
        lo = int(np.floor(h))
        hi = min(lo + 1, n - 1)
        out[k + 1] = (b[lo] + (b[hi] - b[lo]) * (h - lo)) * 1e3
