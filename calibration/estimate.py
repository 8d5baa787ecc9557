"""`Estimate`: a value with its 95 % interval, and the bootstrap helpers every fit uses.

Uncertainty is by bootstrap (percentile intervals): over repeats within a batch size for
isolated measurements, over blocks of consecutive counter intervals for everything read
from Prometheus, over replicas for start-ups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLOCK = 8  # consecutive chunks per bootstrap block (counter chunks are autocorrelated)


@dataclass
class Estimate:
    value: float
    lo: float
    hi: float
    n: int = 0
    method: str = ""

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi

    def fmt(self, unit: str = "", digits: int = 4) -> str:
        def g(x: float) -> str:  # round-off (1e-13) prints as 0
            return f"{0.0 if abs(x) < 1e-9 else x:.{digits}g}"

        if math.isfinite(self.lo):
            return f"{g(self.value)}{unit} [{g(self.lo)}, {g(self.hi)}]"
        return f"{g(self.value)}{unit}"


def fixed(value: float, method: str) -> Estimate:
    return Estimate(value, math.nan, math.nan, 0, method)


def interval(boot: np.ndarray, value: float, n: int, method: str) -> Estimate:
    boot = boot[np.isfinite(boot)]
    if len(boot) < 10:
        return Estimate(value, math.nan, math.nan, n, method)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return Estimate(value, float(min(lo, value)), float(max(hi, value)), n, method)


def block_indices(n: int, rng: np.random.Generator, block: int = BLOCK) -> np.ndarray:
    """Indices of a moving-block bootstrap resample of 0..n-1."""
    if n <= block:
        return rng.integers(0, n, n)
    starts = rng.integers(0, n - block + 1, int(math.ceil(n / block)))
    return (starts[:, None] + np.arange(block)[None, :]).ravel()[:n]
