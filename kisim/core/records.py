"""Every request's latency in completion order, with the sorted copy a run's figures need.

A run's percentiles and its latency histogram are order statistics: numpy finds them by
partitioning or sorting every request again (~1.3 ms of a 29 k-request run, ~6 % of it).
A producer that already holds its records sorted in parts (the twin sorts each window's
for the window's percentiles) hands them over as `LatencyRecords`: a plain float array to
numpy and every caller, which also builds its sorted copy once, on first use
(`presorted`). `linear_percentiles` and `sorted_histogram` read that copy and give exactly
what ``np.percentile`` (method ``linear``) and ``np.histogram`` give on the unsorted
records (`tests/kisim/test_records.py` compares them value for value).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class LatencyRecords(np.ndarray):
    """Latencies (s) in completion order; `presorted()` their sorted copy, built on first use
    by the producer's `sorter`. Derived arrays (slices, arithmetic, unpickled copies) hold
    other values or none: they have no sorted copy, and callers treat them as plain arrays
    (a partition for three percentiles beats a sort)."""

    _sorter: Callable[[], np.ndarray] | None
    _sorted: np.ndarray | None

    @classmethod
    def of(cls, values: np.ndarray,
           sorter: Callable[[], np.ndarray]) -> LatencyRecords:  # fmt: skip
        """`values` (float64, not copied) as records; `sorter` returns the same values sorted."""
        rec = np.asarray(values, dtype=np.float64).view(cls)
        rec._sorter = sorter
        return rec

    def __array_finalize__(self, obj: Any) -> None:
        self._sorter = None  # a view or result of arithmetic holds other values
        self._sorted = None

    def presorted(self) -> np.ndarray | None:
        """The records in ascending order (a plain array, built once) if the producer can
        sort them cheaply; None for derived arrays."""
        if self._sorted is None and self._sorter is not None:
            self._sorted = self._sorter()
            self._sorter = None
        return self._sorted


def linear_percentiles(sorted_values: np.ndarray, percents: Sequence[float]) -> list[float]:
    """``np.percentile(values, percents)`` (default method ``linear``) from the values sorted,
    with numpy's arithmetic step for step: index (n - 1) q with q = p / 100, and its `_lerp`
    (a + (b - a) g, or b - (b - a)(1 - g) from g >= 0.5)."""
    n = len(sorted_values)
    out: list[float] = []
    for p in percents:
        q = float(np.true_divide(p, 100))
        virtual = (n - 1) * q
        if virtual >= n - 1:
            out.append(float(sorted_values[-1]))
            continue
        lo = int(np.floor(virtual))
        g = virtual - lo
        a, b = float(sorted_values[lo]), float(sorted_values[lo + 1])
        diff = b - a
        out.append(b - diff * (1 - g) if g >= 0.5 else a + diff * g)
    return out


def sorted_histogram(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, bins=edges)[0]`` from the values sorted: bin i holds
    edges[i] <= v < edges[i + 1], the last bin edges[-2] <= v <= edges[-1] (numpy's rule)."""
    cum = np.concatenate((sorted_values.searchsorted(edges[:-1], "left"),
                          sorted_values.searchsorted(edges[-1:], "right")))  # fmt: skip
    return np.diff(cum)
