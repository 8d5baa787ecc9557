"""A window's latency figures from its sorted records (exact mode: `metrics.latency_stats:
exact`, and `auto` on short runs).

Each window's mean and percentiles are read from its latencies in sorted order, so the
twin sorts every window's records once (a sort's output is the same whatever the
algorithm: `twin.sorting`) and keeps the sorted copies: the run's percentiles and latency
histogram are read from them (`kisim.core.records.LatencyRecords`) instead of from every
request sorted again.

`window_figures` does a window's whole exact-mode cut in one compiled call (copies, sort,
mean and percentiles, mean queue wait): as separate numpy calls between SimPy events, on
caches the kernel had just filled, they cost ~1.5 ms of a ~23 ms `kisim bench twin` run
(20 windows; `results/scale/short-runs/`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from twin.sorting import BUCKET_SORT_FROM, sort_nonnegative

PW_BLOCKSIZE = 128
"""numpy's pairwise-summation block (``PW_BLOCKSIZE``, numpy/_core/src/umath/loops_utils.h.src)."""


@njit(cache=True)
def window_stats_ms(b, out):  # type: ignore[no-untyped-def]
    """mean, p50, p95, p99 (ms) of the sorted latencies `b` (s), into `out[:4]`.

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
def _block_sum(a, lo, n):  # type: ignore[no-untyped-def]
    """numpy's sum of at most `PW_BLOCKSIZE` values: a plain loop under 8, else 8
    accumulators added pairwise, then the rest one by one."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = lo + 8
    end = lo + n - n % 8
    while i < end:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < lo + n:
        res += a[i]
        i += 1
    return res


@njit(cache=True)
def pairwise_sum(a):  # type: ignore[no-untyped-def]
    """``a.sum()`` as numpy adds a contiguous float64 array, operation for operation
    (``pairwise_sum`` in loops_utils.h.src: blocks of at most `PW_BLOCKSIZE` values, split
    in halves on multiples of 8, the halves' sums added), so the result is numpy's bit for
    bit (`tests/twin/test_latency_stats.py` compares them). numpy recurses; this walks the
    same tree with a stack (a recursive numba function loaded from numba's cache crashed)."""
    todo_lo = np.empty(256, np.int64)  # pending nodes: (lo, n); n < 0 = add the last two sums
    todo_n = np.empty(256, np.int64)
    sums = np.empty(128, np.float64)
    top, k = 1, 0
    todo_lo[0], todo_n[0] = 0, a.shape[0]
    while top > 0:
        top -= 1
        lo, n = todo_lo[top], todo_n[top]
        if n < 0:
            k -= 1
            sums[k - 1] = sums[k - 1] + sums[k]
        elif n <= PW_BLOCKSIZE:
            sums[k] = _block_sum(a, lo, n)
            k += 1
        else:
            n2 = n // 2
            n2 -= n2 % 8
            todo_lo[top], todo_n[top] = 0, -1  # after both halves: left + right
            todo_lo[top + 1], todo_n[top + 1] = lo + n2, n - n2  # then the right half
            todo_lo[top + 2], todo_n[top + 2] = lo, n2  # the left half first
            top += 3
    return sums[0]


@njit(cache=True)
def mean(a):  # type: ignore[no-untyped-def]
    """``a.mean()`` of a non-empty contiguous float64 array, bit for bit numpy's."""
    return (0.0 + pairwise_sum(a)) / a.shape[0]


@njit(cache=True)
def window_figures(lat, wait, out):  # type: ignore[no-untyped-def]
    """A window's exact-mode figures from its latencies and queue waits (s, same length n
    > 0, not changed): returns copies of both and the latencies sorted; `out` gets mean,
    p50, p95, p99 latency and the mean wait (ms), the numbers `window_stats_ms` and
    ``wait.mean() * 1e3`` give."""
    n = lat.shape[0]
    lat_c = lat.copy()
    wait_c = wait.copy()
    ordered = sort_nonnegative(lat_c) if n >= BUCKET_SORT_FROM else np.sort(lat_c)
    window_stats_ms(ordered, out)
    out[4] = mean(wait_c) * 1e3
    return lat_c, wait_c, ordered
