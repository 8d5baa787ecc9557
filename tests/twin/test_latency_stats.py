"""The twin's per-window latency figures, read from the window's sorted latencies."""

from __future__ import annotations

import numpy as np

from twin.latency_stats import window_stats_ms


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
