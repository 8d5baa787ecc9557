"""numpy's sort against the twin's bucket sort on one real window per suite scenario.

``python -m bench.window_sort``: for each suite scenario, the latencies of the 30-s window
at t = 330-360 s (seed 1000001, exact mode), sorted 30 times by each in alternation (CPU
time); the two arrays are checked equal bit for bit (docs/training.md, "Merged since").
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from kisim.core.config import load_scenario
from twin.backend import TwinBackend
from twin.sorting import sort_nonnegative

SUITE = Path(__file__).resolve().parents[1] / "configs" / "scenarios" / "suite"


def window_sort(path: Path, reps: int = 30) -> tuple[int, float, float]:
    """(latencies, numpy ms, bucket ms) of the window at 330-360 s of `path`'s scenario."""
    b = TwinBackend()
    b.reset(load_scenario(path), 1_000_001)
    for _ in range(12):
        b.advance(30.0)
    lat = np.asarray(b._lat[-1], dtype=np.float64)
    sort_nonnegative(lat)  # compiled before the timing
    tn = tb = 0.0
    for _ in range(reps):
        t = time.process_time()
        x = np.sort(lat)
        tn += time.process_time() - t
        t = time.process_time()
        y = sort_nonnegative(lat)
        tb += time.process_time() - t
    assert np.array_equal(x.view(np.int64), y.view(np.int64))
    return len(lat), tn / reps * 1e3, tb / reps * 1e3


if __name__ == "__main__":
    for p in sorted(SUITE.glob("*.yaml")):
        n, tn, tb = window_sort(p)
        print(f"{p.stem}: {n} latencies, numpy {tn:.3f} ms, bucket {tb:.3f} ms ({tn / tb:.1f}x)")
