"""A window's latency figures from its sorted records, and one run's sorted records from its
windows' (exact mode: `metrics.latency_stats: exact`, and `auto` on short runs).

Each window's mean and percentiles are read from its latencies in sorted order, so the
twin sorts every window's records once (numpy's sort: several times faster than numba's on
these arrays, and a sort's output is the same whatever the algorithm) and keeps the sorted
copies; the run's percentiles and latency histogram then come from merging them
(`merge_sorted`: linear per level, ~5 levels for 20 windows) instead of sorting every
request again (`kisim.core.records.LatencyRecords`).
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


@njit(cache=True)
def _merge_runs(src, bounds):  # type: ignore[no-untyped-def]
    """Sorted runs src[bounds[i]:bounds[i + 1]] merged pairwise, level by level."""
    dst = np.empty_like(src)
    k = bounds.shape[0] - 1
    b = bounds.copy()
    while k > 1:
        nk = 0
        for i in range(0, k, 2):
            lo, mid = b[i], b[i + 1]
            hi = b[i + 2] if i + 1 < k else mid
            p, q, o = lo, mid, lo
            while p < mid and q < hi:
                if src[q] < src[p]:
                    dst[o] = src[q]
                    q += 1
                else:
                    dst[o] = src[p]
                    p += 1
                o += 1
            while p < mid:
                dst[o] = src[p]
                p += 1
                o += 1
            while q < hi:
                dst[o] = src[q]
                q += 1
                o += 1
            b[nk] = lo
            nk += 1
        b[nk] = b[k]
        k = nk
        src, dst = dst, src
    return src


def merge_sorted(parts: list[np.ndarray]) -> np.ndarray:
    """One sorted array of every value of the sorted arrays `parts` (a new array)."""
    if not parts:
        return np.empty(0)
    flat = np.concatenate(parts)
    if len(parts) == 1:
        return flat
    bounds = np.zeros(len(parts) + 1, np.int64)
    np.cumsum([len(p) for p in parts], out=bounds[1:])
    return _merge_runs(flat, bounds)  # type: ignore[no-any-return]
