"""`twin.sorting.sort_nonnegative` returns np.sort's array bit for bit, whatever the input
(the recorded means are summed in sorted order, so a near-miss would change numbers)."""

from __future__ import annotations

import numpy as np
import pytest

from kisim.core.config import load_scenario
from twin.backend import TwinBackend
from twin.latency_stats import window_stats_ms
from twin.sorting import SMALL_BUCKET, sort_nonnegative


def _same_bits(a: np.ndarray) -> None:
    got, want = sort_nonnegative(a), np.sort(a)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got.view(np.int64), want.view(np.int64))


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 5000
    return {
        "lognormal latencies": rng.lognormal(-3.0, 0.5, n),
        "exponential (wide span)": rng.exponential(1.0, n),
        "narrow span": 0.05 + rng.random(n) * 1e-12,
        "all equal": np.full(n, 0.0123),
        "many ties": rng.integers(0, 7, n) * 0.01,
        "zeros and inf": np.concatenate([np.zeros(50), np.full(50, np.inf), rng.random(n)]),
        "subnormals": rng.random(n) * 5e-324 * 1000,
        "one far outlier": np.concatenate([0.02 + rng.random(n) * 1e-3, [1e300]]),
        "sorted": np.sort(rng.random(n)),
        "reversed": np.sort(rng.random(n))[::-1].copy(),
        "negative values": rng.normal(0.0, 1.0, n),
        "minus zero": np.concatenate([[-0.0], rng.random(n)]),
        "nan": np.concatenate([[np.nan], rng.random(n), [np.nan]]),
        "small": rng.random(2 * SMALL_BUCKET - 1),
        "empty": np.empty(0),
        "non-contiguous": rng.random(2 * n)[::2],
    }


@pytest.mark.parametrize("name", sorted(_cases()))
def test_same_array_as_np_sort(name: str) -> None:
    _same_bits(_cases()[name])


def test_random_shapes_and_scales() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(0, 3000))
        scale = 10.0 ** rng.uniform(-6, 6)
        a = rng.lognormal(0.0, rng.uniform(0.01, 4.0), n) * scale
        if rng.random() < 0.3:  # repeated values, as a deterministic service time gives
            a = np.round(a, int(rng.integers(1, 5)))
        _same_bits(a)


def test_a_suite_window_sorts_to_the_same_percentiles() -> None:
    """Real latencies of a gpu-fleet run: the mean and quantiles are unchanged."""
    sc = load_scenario("configs/scenarios/suite/gpu-fleet.yaml")
    b = TwinBackend()
    b.reset(sc, 3)
    b.advance(60.0)
    lat = np.asarray(b.latencies(), dtype=np.float64)
    assert len(lat) > 10_000
    _same_bits(lat)
    got = np.zeros(4)
    window_stats_ms(sort_nonnegative(lat), got)
    s = np.sort(lat)
    n = len(s)
    acc = 0.0  # numba's sum is sequential: compare to a sequential sum
    for v in s:
        acc += v
    want = [acc / n * 1e3]
    for q in (50.0, 95.0, 99.0):
        h = (n - 1) * q / 100.0
        lo = int(np.floor(h))
        hi = min(lo + 1, n - 1)
        want.append((s[lo] + (s[hi] - s[lo]) * (h - lo)) * 1e3)
    assert got.tolist() == want
