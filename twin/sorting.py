"""Sorting a window's latencies fast enough for training (compiled, bit-identical to np.sort).

Every agent step of a suite scenario sorts the ~20,000-35,000 latencies of its window
(`twin.backend`): the window's mean is summed in sorted order and its percentiles read from
it (`twin.latency_stats.window_stats_ms`), and the sorted windows are kept for the run's
figures, so the sorted array itself is what the recorded numbers depend on. numba's
``np.sort`` (a quicksort) took 15-21 % of an env step there, numpy's own sort about half
of that; this bucket sort is 4-5x faster than numba's and about 2-4x faster than numpy's
on those windows (docs/training.md, "Where a step's time goes"). Windows under
`BUCKET_SORT_FROM` latencies keep numpy's sort: a compiled call costs a few microseconds.

Why it is exact: a non-negative IEEE-754 double orders as its bit pattern read as an
integer, so bucketing by the high bits of that integer is monotone; each bucket is then
sorted on its own (insertion sort when small, ``np.sort`` otherwise). A sorted array of
floats is unique (equal values have equal bits), so the result is the array ``np.sort``
returns, bit for bit. Anything else - a negative value, -0.0, NaN - takes ``np.sort``
itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SIGN_OR_NAN = np.int64(0x7FF0000000000000)  # bit patterns above +inf are NaNs
SMALL_BUCKET = 24  # insertion sort up to this many values in a bucket, np.sort beyond
BUCKET_SORT_FROM = 1024  # `twin.backend` sorts smaller windows with numpy (the same array)


@njit(cache=True)
def sort_nonnegative(a):  # type: ignore[no-untyped-def]
    """``np.sort(a)`` of a 1-D float64 array; fast when every value is >= +0.0."""
    n = a.shape[0]
    if n < 2 * SMALL_BUCKET:
        return np.sort(a)
    bits = np.ascontiguousarray(a).view(np.int64)
    lo = bits[0]
    hi = bits[0]
    for i in range(n):
        k = bits[i]
        if k < 0 or k > SIGN_OR_NAN:  # negative (incl. -0.0) or NaN: the general sort
            return np.sort(a)
        if k < lo:
            lo = k
        elif k > hi:
            hi = k
    shift = 0  # about one bucket per value over [lo, hi] in bit space (relative widths)
    while ((hi - lo) >> shift) >= n:
        shift += 1
    m = ((hi - lo) >> shift) + 1
    start = np.zeros(m + 1, np.int64)
    for i in range(n):
        start[((bits[i] - lo) >> shift) + 1] += 1
    for j in range(m):
        start[j + 1] += start[j]
    fill = start[:m].copy()
    out = np.empty(n, np.float64)
    for i in range(n):
        j = (bits[i] - lo) >> shift
        out[fill[j]] = a[i]
        fill[j] += 1
    for j in range(m):
        s, e = start[j], start[j + 1]
        if e - s <= 1:
            continue
        if e - s <= SMALL_BUCKET:
            for i in range(s + 1, e):
                v = out[i]
                p = i - 1
                while p >= s and out[p] > v:
                    out[p + 1] = out[p]
                    p -= 1
                out[p + 1] = v
        else:
            out[s:e] = np.sort(out[s:e])
    return out
