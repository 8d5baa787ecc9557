"""The twin's per-window latency figures and its merge of sorted windows."""

from __future__ import annotations

import numpy as np

from twin.latency_stats import merge_sorted, window_stats_ms


def test_merge_sorted_is_a_sort() -> None:
    rng = np.random.default_rng(7)
    for k in (1, 2, 3, 5, 8, 20, 33):
        parts = [np.sort(rng.lognormal(-3, 0.5, rng.integers(0, 300))) for _ in range(k)]
        parts.append(np.sort(rng.integers(0, 4, 50) * 0.01))  # ties across parts
        got = merge_sorted(parts)
        assert np.array_equal(got, np.sort(np.concatenate(parts))), k
    assert merge_sorted([]).size == 0


def test_window_stats_read_the_sorted_values() -> None:
    """mean = sum of the sorted values in order / n; percentiles interpolate at (n-1) q/100."""
    b = np.array([0.001, 0.002, 0.004, 0.008, 0.016])
    out = np.zeros(4)
    window_stats_ms(b, out)
    total = 0.0
    for v in b:
        total += v
    h95 = 4 * 95.0 / 100.0
    assert out[0] == total / 5 * 1e3
    assert out[1] == 4.0
    assert out[2] == (b[3] + (b[4] - b[3]) * (h95 - 3)) * 1e3
    one = np.zeros(4)
    window_stats_ms(np.array([0.25]), one)
    assert one.tolist() == [250.0, 250.0, 250.0, 250.0]
