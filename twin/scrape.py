"""What Prometheus would show: an in-memory series store read through PromQL semantics.

Controllers and policies in the twin must see the same lag and smoothing as on a real
cluster: counters sampled at scrape instants and read through ``rate()``/``increase()``
windows, gauges read through the 5-minute staleness lookback. This module is that store;
it is pure Python (bisect on per-series lists), with no SimPy and no I/O.

Source mirrored: ``promql/functions.go`` of prometheus/prometheus, ``extrapolatedRate``
(float-sample path; the experimental ``anchored``/``smoothed`` modifiers, native
histograms and OTel start timestamps are out of scope), read at the 3.x main-line commit
003b9e9d2c41. Semantics followed are those of Prometheus 3.x:

* range selection ``x[r]`` at ``t`` is left-open ``(t - r, t]`` (3.0 change; 2.x was closed);
* the instant-vector lookback is left-open too, ``(t - 5m, t]``, and a staleness marker
  newer than the newest sample hides the series;
* the counter zero-point clamp is applied *after* the 1.1 x average-interval threshold
  (PR #13725, 2024); older servers (e.g. Debian's 2.42) clamp first and can differ when a
  series starts mid-window.

Timestamps are quantised to integer milliseconds, as Prometheus stores them, so the
left-open boundary is exact and the float arithmetic matches the Go code step by step.
"""

from __future__ import annotations

import math
from bisect import bisect_right

__all__ = ["SeriesStore", "scrape_times"]


def _ms(t: float) -> int:
    return int(round(t * 1000.0))


class _Series:
    __slots__ = ("ts", "vs", "stale")

    def __init__(self) -> None:
        self.ts: list[int] = []  # sample timestamps, ms, strictly increasing
        self.vs: list[float] = []
        self.stale: list[int] = []  # staleness-marker timestamps, ms, increasing


class SeriesStore:
    """Samples of named series taken at scrape times (like a Prometheus TSDB, in memory).

    ``retention_s`` must exceed every range and lookback that is queried: samples older
    than ``newest_added - retention_s`` are dropped in an amortised sweep every
    ``SWEEP_EVERY`` adds, or every as many adds as there are series when there are more
    (bisect + one slice per series), so ``add`` stays O(1) however many pods are scraped.
    """

    SWEEP_EVERY = 1024

    def __init__(self, retention_s: float = 3600.0) -> None:
        if retention_s <= 0:
            raise ValueError("retention_s must be > 0")
        self._retention_ms = _ms(retention_s)
        self._series: dict[str, _Series] = {}
        self._adds = 0
        self._next_sweep = self.SWEEP_EVERY
        self._newest_ms = -(2**62)

    def add(self, t: float, key: str, value: float) -> None:
        """Append a scraped sample; ``t`` must increase per series (TSDB rejects out-of-order)."""
        self.add_all(t, [(key, value)])

    def add_all(self, t: float, samples: list[tuple[str, float]]) -> None:
        """`add` of every ``(key, value)`` sample of one scrape at ``t`` (the timestamp
        quantised once: a scrape of 1,000 pods adds 7,000 samples)."""
        t_ms = _ms(t)
        series = self._series
        for key, value in samples:
            s = series.get(key)
            if s is None:
                s = series[key] = _Series()
            if (s.ts and t_ms <= s.ts[-1]) or (s.stale and t_ms <= s.stale[-1]):
                raise ValueError(f"out-of-order or duplicate sample for {key!r} at t={t}")
            s.ts.append(t_ms)
            s.vs.append(float(value))
            if t_ms > self._newest_ms:
                self._newest_ms = t_ms
            self._adds += 1
            if self._adds >= self._next_sweep:
                self._sweep()

    def _sweep(self) -> None:
        """Drop samples at or before ``newest - retention``; forget series left empty."""
        cutoff = self._newest_ms - self._retention_ms
        for key in list(self._series):
            s = self._series[key]
            i = bisect_right(s.ts, cutoff)
            if i:
                del s.ts[:i], s.vs[:i]
            j = bisect_right(s.stale, cutoff)
            if j:
                del s.stale[:j]
            if not s.ts and not s.stale:
                del self._series[key]
        self._next_sweep = self._adds + max(self.SWEEP_EVERY, len(self._series))

    def _window(self, key: str, at: float, range_s: float) -> tuple[_Series, int, int, int, int]:
        """Indices ``[lo, hi)`` of the samples in ``(at - range, at]`` plus the bounds in ms."""
        s = self._series.get(key) or _Series()
        end = _ms(at)
        start = end - _ms(range_s)
        return s, bisect_right(s.ts, start), bisect_right(s.ts, end), start, end

    def _extrapolated(
        self, key: str, at: float, range_s: float, is_counter: bool, is_rate: bool
    ) -> float | None:
        """Port of ``extrapolatedRate`` (float samples) from promql/functions.go."""
        s, lo, hi, range_start, range_end = self._window(key, at, range_s)
        n = hi - lo
        if n < 2:
            return None  # fewer than two samples: the element is dropped from the result
        ts, vs = s.ts, s.vs
        first_t, last_t, first_v = ts[lo], ts[hi - 1], vs[lo]
        result = vs[hi - 1] - first_v
        if is_counter:  # a drop means the process restarted: add back the pre-reset value
            prev = first_v
            for i in range(lo + 1, hi):
                cur = vs[i]
                if cur < prev:
                    result += prev
                prev = cur
        to_start = (first_t - range_start) / 1000
        to_end = (range_end - last_t) / 1000
        sampled = (last_t - first_t) / 1000
        avg_step = sampled / (n - 1)
        threshold = avg_step * 1.1  # a gap this large means the series starts/ends inside
        if to_start >= threshold:
            to_start = avg_step / 2
        if is_counter:  # never extrapolate a counter below zero
            to_zero = to_start
            if result > 0 and first_v >= 0:
                to_zero = sampled * (first_v / result)
            if to_zero < to_start:
                to_start = to_zero
        if to_end >= threshold:
            to_end = avg_step / 2
        factor = (sampled + to_start + to_end) / sampled
        if is_rate:
            factor /= _ms(range_s) / 1000
        return result * factor

    def rate(self, key: str, at: float, range_s: float) -> float | None:
        """PromQL ``rate(key[range_s])`` evaluated at ``at`` (per second); None = empty."""
        return self._extrapolated(key, at, range_s, True, True)

    def increase(self, key: str, at: float, range_s: float) -> float | None:
        """PromQL ``increase(key[range_s])``: ``rate x range``, computed as Prometheus does."""
        return self._extrapolated(key, at, range_s, True, False)

    def delta(self, key: str, at: float, range_s: float) -> float | None:
        """PromQL ``delta(key[range_s])``: last minus first, extrapolated to the range, no
        counter-reset handling (what Triton's autoscaling recipe applies to its counters)."""
        return self._extrapolated(key, at, range_s, False, False)

    def avg_over_time(self, key: str, at: float, range_s: float) -> float | None:
        """PromQL ``avg_over_time(key[range_s])``; fsum stands in for Go's Kahan sum."""
        s, lo, hi, _, _ = self._window(key, at, range_s)
        return math.fsum(s.vs[lo:hi]) / (hi - lo) if hi > lo else None

    def last(self, key: str, at: float, lookback_s: float = 300.0) -> float | None:
        """Instant-vector value of a gauge: newest sample in ``(at - lookback, at]``.

        None when there is none, or when a staleness marker (see ``drop``) lies after it.
        """
        s = self._series.get(key)
        if s is None:
            return None
        end = _ms(at)
        i = bisect_right(s.ts, end) - 1
        if i < 0 or s.ts[i] <= end - _ms(lookback_s):
            return None
        j = bisect_right(s.stale, end) - 1
        if j >= 0 and s.stale[j] > s.ts[i]:
            return None
        return s.vs[i]

    def keys(self, prefix: str = "") -> list[str]:
        """Stored series names starting with ``prefix``, sorted (ended series included
        until retention removes them, as range queries still see their samples)."""
        return sorted(k for k in self._series if k.startswith(prefix))

    def drop(self, key: str, at: float | None = None) -> None:
        """A pod that went away: its series ends.

        With ``at`` (what Prometheus does when a target vanishes or a scrape fails) a
        staleness marker is written: ``last`` returns None from ``at`` on, while
        ``rate``/``avg_over_time`` windows keep using the old samples until they age out.
        Without ``at`` the series is forgotten at once.
        """
        if at is None:
            self._series.pop(key, None)
            return
        s = self._series.get(key)
        if s is None:
            return
        t_ms = _ms(at)
        if (s.ts and t_ms <= s.ts[-1]) or (s.stale and t_ms <= s.stale[-1]):
            raise ValueError(f"staleness marker for {key!r} at t={at} is not after its samples")
        s.stale.append(t_ms)


def scrape_times(start: float, until: float, interval: float, offset: float = 0.0) -> list[float]:
    """Scrape instants in ``[start, until)`` on the grid ``offset + k * interval``.

    Prometheus spreads targets by giving each a fixed phase within the interval; pass a
    per-target ``offset`` for that. Half-open, so consecutive ``advance`` windows neither
    skip nor repeat a scrape; instants are computed as ``offset + k * interval`` (no
    accumulated float drift).
    """
    if interval <= 0:
        raise ValueError("interval must be > 0")
    offset = math.fmod(offset, interval)
    eps = 1e-9 * interval
    k = math.ceil((start - offset) / interval - 1e-9)
    out: list[float] = []
    while True:
        t = offset + k * interval
        if t >= until - eps:
            return out
        if t >= start - eps:
            out.append(t)
        k += 1
