"""Buffered random streams: numpy draws in blocks, handed out as Python floats.

Per-request code calls `take()` thousands of times per simulated second; drawing
blocks of 4096 from a seeded `numpy.random.Generator` and converting them once
with `tolist()` is several times cheaper than one numpy call per draw, and keeps
every stream reproducible from (seed, stream name).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

import numpy as np

from kisim.core.config import Dist

BLOCK = 4096


def stream_seed(seed: int, name: str) -> np.random.SeedSequence:
    """Independent, named sub-stream: adding a stream never shifts the others."""
    h = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    return np.random.SeedSequence([seed, h])


class Draws:
    """A stream of floats from `sample(generator, n) -> ndarray`, served from a buffer."""

    __slots__ = ("_gen", "_sample", "_buf", "_i")

    def __init__(self, seed: int, name: str, sample: Callable[[np.random.Generator, int], np.ndarray]):
        self._gen = np.random.Generator(np.random.PCG64(stream_seed(seed, name)))
        self._sample = sample
        self._buf: list[float] = []
        self._i = 0

    def take(self) -> float:
        i = self._i
        if i >= len(self._buf):
            self._buf = self._sample(self._gen, BLOCK).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]


def uniform() -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda g, n: g.random(n)


def between(lo: float, hi: float) -> Callable[[np.random.Generator, int], np.ndarray]:
    """Locust's `between(lo, hi)`: uniform think time."""
    return lambda g, n: g.uniform(lo, hi, n)


def multiplier(dist: Dist) -> Callable[[np.random.Generator, int], np.ndarray]:
    """Mean-one positive multiplier: deterministic (1), exponential, or lognormal with cv."""
    if dist.kind == "deterministic" or (dist.kind == "lognormal" and dist.cv == 0):
        return lambda g, n: np.ones(n)
    if dist.kind == "exponential":
        return lambda g, n: g.exponential(1.0, n)
    sigma = math.sqrt(math.log1p(dist.cv**2))
    mu = -0.5 * sigma * sigma
    return lambda g, n: g.lognormal(mu, sigma, n)
