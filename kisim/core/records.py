"""Every request's latency in completion order, with the sorted parts a run's figures need.

A run's percentiles and its latency histogram are order statistics: numpy finds them by
partitioning or sorting every request again (~1.3 ms of a 29 k-request run, ~6 % of it).
A producer that already holds its records sorted in parts (the twin sorts each window's
latencies for the window's percentiles) hands them over as `LatencyRecords`: a plain float
array to numpy and every caller, which also carries those parts (`sorted_parts`).
`parts_percentiles` selects order statistics from them (cut into value ranges, only the
range holding a rank is gathered and partitioned) and `parts_histogram` counts per part;
both give exactly what ``np.percentile`` (method ``linear``) and ``np.histogram`` give on
the unsorted records (`tests/kisim/test_records.py` compares them value for value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SELECT_CUTS = 64
"""Value ranges `parts_percentiles` cuts the records into (from the largest part's order
statistics): a rank's range holds ~1/64 of the records when the parts are alike."""


class LatencyRecords(np.ndarray):
    """Latencies (s) in completion order; `sorted_parts()` the producer's sorted parts, whose
    union is the same values. Derived arrays (slices, arithmetic, unpickled copies) hold
    other values or none: they carry no parts, and callers treat them as plain arrays."""

    _parts: tuple[np.ndarray, ...] | None

    @classmethod
    def of(cls, values: np.ndarray, sorted_parts: Sequence[np.ndarray]) -> LatencyRecords:
        """`values` (float64, not copied) as records; `sorted_parts`: the same values, in
        sorted arrays (not copied)."""
        rec = np.asarray(values, dtype=np.float64).view(cls)
        rec._parts = tuple(sorted_parts)
        return rec

    def __array_finalize__(self, obj: Any) -> None:
        self._parts = None  # a view or result of arithmetic holds other values

    def sorted_parts(self) -> tuple[np.ndarray, ...] | None:
        """The producer's sorted parts (seconds), or None for derived arrays."""
        return self._parts


def _select(parts: Sequence[np.ndarray], ranks: Sequence[int]) -> dict[int, float]:
    """The values at 0-based `ranks` of the union of the sorted `parts`, by rank."""
    ref = max(parts, key=len)
    cuts = ref[np.linspace(0, len(ref) - 1, min(len(ref), SELECT_CUTS)).astype(np.intp)]
    # pos[j, s]: values of part j below range s; range s = [cuts[s - 1], cuts[s])
    pos = np.empty((len(parts), len(cuts) + 2), np.intp)
    pos[:, 0] = 0
    for j, p in enumerate(parts):
        pos[j, 1:-1] = p.searchsorted(cuts, "left")
        pos[j, -1] = len(p)
    total = pos.sum(axis=0)
    by_range: dict[int, list[int]] = {}
    for r in ranks:  # total[s] <= r < total[s + 1]
        by_range.setdefault(int(np.searchsorted(total, r, "right")) - 1, []).append(r)
    out: dict[int, float] = {}
    for s, rs in by_range.items():
        vals = np.concatenate([p[pos[j, s] : pos[j, s + 1]] for j, p in enumerate(parts)])
        ks = [r - int(total[s]) for r in rs]
        vals.partition(ks)
        out.update((r, float(vals[k])) for r, k in zip(rs, ks, strict=True))
    return out


def parts_percentiles(parts: Sequence[np.ndarray], percents: Sequence[float],
                      scale: float = 1.0) -> list[float]:  # fmt: skip
    """``np.percentile(values * scale, percents)`` (method ``linear``) of the union of the
    sorted `parts` (scale > 0 keeps the order: rank r of values x scale is rank r of the
    values, x scale), with numpy's arithmetic step for step: index (n - 1) q with
    q = p / 100, and its `_lerp` (a + (b - a) g, or b - (b - a)(1 - g) from g >= 0.5)."""
    n = sum(len(p) for p in parts)
    plan: list[tuple[int, float]] = []
    for p in percents:
        virtual = (n - 1) * float(np.true_divide(p, 100))
        lo = n - 1 if virtual >= n - 1 else int(np.floor(virtual))
        plan.append((lo, virtual - lo))
    ranks = sorted({r for lo, _ in plan for r in (lo, min(lo + 1, n - 1))})
    at = {r: v * scale for r, v in _select(parts, ranks).items()}
    out: list[float] = []
    for lo, g in plan:
        if lo == n - 1:
            out.append(at[lo])
            continue
        a, b = at[lo], at[lo + 1]
        diff = b - a
        out.append(b - diff * (1 - g) if g >= 0.5 else a + diff * g)
    return out


def parts_histogram(parts: Sequence[np.ndarray], edges: np.ndarray,
                    scale: float = 1.0) -> np.ndarray:  # fmt: skip
    """``np.histogram(values * scale, bins=edges)[0]`` of the union of the sorted `parts`:
    bin i holds edges[i] <= v < edges[i + 1], the last bin edges[-2] <= v <= edges[-1]."""
    counts = np.zeros(len(edges) - 1, np.int64)
    for p in parts:
        ps = p * scale
        cum = np.concatenate((ps.searchsorted(edges[:-1], "left"),
                              ps.searchsorted(edges[-1:], "right")))  # fmt: skip
        counts += np.diff(cum)
    return counts
