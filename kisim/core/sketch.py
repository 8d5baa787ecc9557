"""A mergeable quantile sketch with a relative-error guarantee, for per-request latencies.

Keeping every request's latency makes a run's memory grow with its requests (a day at
10 k req/s is 864 M of them). A `LatencySketch` keeps counts in logarithmic buckets
instead — the DDSketch construction (Masson, Rim & Lee, "DDSketch: a fast and fully
mergeable quantile sketch with relative-error guarantees", VLDB 2019): bucket k holds the
values in (γ^(k-1), γ^k] x `MIN_S`, and reports them as 2γ^k/(γ+1) x `MIN_S`, which is
within ``ALPHA`` (relative) of every value in the bucket, with γ = (1 + α)/(1 − α).

Guarantee: for values in [`MIN_S`, `MAX_S`], every quantile this sketch reports is within
`ALPHA` (0.5 %) of the exact quantile numpy's default (linear interpolation between
order statistics) gives: the two order statistics around the rank are each reported
within α, and a convex combination of two positive numbers each within α of its target is
within α of the combination. Values below `MIN_S` (1 µs; a queue wait of zero) count in
bucket 0 and read as 0; values above `MAX_S` read as the last bucket. Sums are kept
exactly, so means are exact up to the order of the float additions.

A fixed bucket layout makes sketches merge by adding counts (windows into a run, runs
into a sweep); the twin's compiled kernel fills the same buckets (`bucket_of`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

ALPHA = 0.005
"""Relative accuracy of every reported quantile (0.5 %)."""
GAMMA = (1.0 + ALPHA) / (1.0 - ALPHA)
LOG_GAMMA = math.log(GAMMA)
MIN_S = 1e-6
"""Smallest value (s) kept with relative accuracy; smaller ones read as 0."""
MAX_S = 1e5
"""Largest value (s) kept with relative accuracy (27 h)."""
N_BUCKETS = 2 + math.ceil(math.log(MAX_S / MIN_S) / LOG_GAMMA)
"""Bucket 0 for values below `MIN_S`, then one bucket per factor γ up to `MAX_S` (2,536)."""


AUTO_EXACT_MAX_REQUESTS = 2e6
"""`latency_stats: auto` keeps every latency up to this many estimated requests (~32 MB of
records; every shipped scenario, so their numbers stay those recorded before the sketch)
and streams them into a sketch beyond."""


def resolve_latency_stats(sc: Any) -> Literal["exact", "sketch"]:
    """The mode a scenario runs in: its `metrics.latency_stats`, `auto` resolved by the run's
    estimated requests (`estimated_requests`)."""
    mode = sc.metrics.latency_stats
    if mode != "auto":
        return mode  # type: ignore[no-any-return]
    return "exact" if estimated_requests(sc) <= AUTO_EXACT_MAX_REQUESTS else "sketch"


AUTO_SAMPLES = 33
"""Pattern levels `estimated_requests` reads: the threshold is a round number, so a coarse
mean does (`kisim.core.guards.estimate` reads up to 4,096 for its memory guard; this runs
at every reset, where 300 reads cost ~4 % of a short run)."""


def estimated_requests(sc: Any) -> float:
    """Requests a run of `sc` simulates, roughly: the pattern's mean level (sampled at
    `AUTO_SAMPLES` points) x duration, times one request per think time plus the fastest
    service time per user in closed loop (an upper bound, as `guards.estimate`)."""
    from kisim.core.patterns import make_pattern

    p = sc.traffic.pattern
    pat = make_pattern(p.name, p.params, sc.seed)
    dur = float(sc.duration_s)
    n = AUTO_SAMPLES
    mean = sum(max(float(pat.level(dur * i / (n - 1))), 0.0) for i in range(n)) / n
    if sc.traffic.mode == "closed":
        think = sum(sc.traffic.wait_time_s) / 2
        fastest = min((d.service.time_ms(1) for d in sc.calibration.devices.values()),
                      default=1.0) / 1000.0  # fmt: skip
        return mean * dur / max(think + fastest, 1e-3)
    return mean * dur


def bucket_of(x: float) -> int:
    """The bucket of value `x` (s); the kernel's compiled copy is `twin.kernel._bucket`."""
    if x < MIN_S:
        return 0
    k = 1 + math.ceil(math.log(x / MIN_S) / LOG_GAMMA)
    return k if k < N_BUCKETS else N_BUCKETS - 1


def _representatives() -> np.ndarray:
    k = np.arange(N_BUCKETS, dtype=np.float64)
    rep = MIN_S * GAMMA ** (k - 1) * 2.0 / (1.0 + GAMMA)
    rep[0] = 0.0
    return rep


REPRESENTATIVE_S: np.ndarray = _representatives()
"""The value each bucket reports (s): within `ALPHA` of every value it holds."""


class LatencySketch:
    """Counts of values (s) per logarithmic bucket plus their exact count and sum."""

    __slots__ = ("counts", "total_s")

    def __init__(self, counts: np.ndarray | None = None, total_s: float = 0.0) -> None:
        self.counts = np.zeros(N_BUCKETS, np.int64) if counts is None else counts
        self.total_s = total_s

    @classmethod
    def of(cls, values_s: np.ndarray | Sequence[float]) -> LatencySketch:
        """The sketch of an array of values (s)."""
        s = cls()
        s.add(np.asarray(values_s, dtype=np.float64))
        return s

    def add(self, values_s: np.ndarray) -> None:
        """Count `values_s` (s) in."""
        v = np.asarray(values_s, dtype=np.float64)
        if v.size == 0:
            return
        k = np.zeros(v.shape, np.int64)
        big = v >= MIN_S
        k[big] = 1 + np.ceil(np.log(v[big] / MIN_S) / LOG_GAMMA).astype(np.int64)
        np.minimum(k, N_BUCKETS - 1, out=k)
        self.counts += np.bincount(k, minlength=N_BUCKETS)
        self.total_s += float(v.sum())

    def merge(self, other: LatencySketch) -> None:
        """Add `other`'s values to this sketch (exact: the same buckets)."""
        self.counts += other.counts
        self.total_s += other.total_s

    def copy(self) -> LatencySketch:
        return LatencySketch(self.counts.copy(), self.total_s)

    def since(self, earlier: LatencySketch) -> LatencySketch:
        """The values counted in after `earlier`, a copy of this sketch taken before (a
        stretch of windows from a run's running sketch)."""
        return LatencySketch(self.counts - earlier.counts, self.total_s - earlier.total_s)

    def __len__(self) -> int:
        return int(self.counts.sum())

    @property
    def size(self) -> int:
        """Number of values (as `np.ndarray.size`)."""
        return len(self)

    def mean(self) -> float:
        """Exact mean (s); NaN when empty."""
        n = len(self)
        return self.total_s / n if n else math.nan

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Values (s) at quantiles `qs` in [0, 1], within `ALPHA` of numpy's linear
        quantiles of the values counted in; NaN when empty."""
        n = len(self)
        if n == 0:
            return [math.nan for _ in qs]
        cum = np.cumsum(self.counts)
        out = []
        for q in qs:
            h = (n - 1) * q
            lo = math.floor(h)
            hi = min(lo + 1, n - 1)
            b = np.searchsorted(cum, [lo, hi], side="right")  # bucket of order statistics
            v_lo, v_hi = REPRESENTATIVE_S[b[0]], REPRESENTATIVE_S[b[1]]
            out.append(float(v_lo + (v_hi - v_lo) * (h - lo)))
        return out

    def histogram(self, edges_s: np.ndarray) -> np.ndarray:
        """Counts per bin of `edges_s`, each bucket counted at its representative value."""
        counts, _ = np.histogram(REPRESENTATIVE_S, bins=edges_s, weights=self.counts)
        return counts.astype(np.int64)
