"""The twin's per-window latency figures, read from the window's sorted latencies."""

from __future__ import annotations

import numpy as np

from twin.latency_stats import mean, window_figures, window_stats_ms


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


def test_mean_is_numpys_bit_for_bit() -> None:
    """The compiled mean adds in numpy's pairwise order: equal to ``a.mean()`` exactly, for
    block-sized, odd and split lengths (a plain left-to-right sum differs on most of them)."""
    rng = np.random.default_rng(7)
    plain_differs = 0
    lengths = [*range(1, 300), 1023, 1024, 1450, 8191, 8192, 8193, 30_001, 100_003]
    for n in lengths:
        a = rng.lognormal(-3.0, 1.0, n)
        assert mean(a) == a.mean(), n
        total = 0.0
        for v in a.tolist():
            total += v
        plain_differs += total / n != a.mean()
    assert plain_differs > len(lengths) // 4  # the order matters: the test can fail


def test_window_figures_match_the_separate_numpy_calls() -> None:
    """One compiled cut gives what the sort, `window_stats_ms` and ``wait.mean()`` gave,
    returns copies (the inputs are the data plane's reused buffers) and leaves them as is."""
    rng = np.random.default_rng(3)
    for n in (1, 7, 500, 1023, 1024, 5000, 40_000):
        lat, wait = rng.lognormal(-3.0, 0.8, n), rng.exponential(0.002, n)
        lat0, wait0 = lat.copy(), wait.copy()
        out = np.zeros(5)
        lat_c, wait_c, ordered = window_figures(lat, wait, out)
        ref = np.zeros(4)
        window_stats_ms(np.sort(lat), ref)
        assert np.array_equal(ordered, np.sort(lat))
        assert out[:4].tolist() == ref.tolist()
        assert out[4] == float(wait.mean() * 1e3)
        assert np.array_equal(lat_c, lat0) and np.array_equal(wait_c, wait0)
        assert not np.shares_memory(lat_c, lat) and not np.shares_memory(wait_c, wait)
        assert np.array_equal(lat, lat0) and np.array_equal(wait, wait0)
