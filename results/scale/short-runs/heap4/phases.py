"""CPU time per phase of `kisim bench twin`'s runs: `time.process_time` around each phase
(wrapped in place, no profiler: cProfile inflated the Python side several-fold), N runs
after two untimed warm-ups, ms a run. Run with PYTHONPATH set to the source tree:

    PYTHONPATH=TREE nice -n 19 .venv/bin/python results/scale/short-runs/heap4/phases.py 60

Indented lines are parts of the line above them; a phase the tree lacks is skipped.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

from bench.twin_bench import WARMUP_SEED, _one_thread, bench_scenario

ACC: dict[str, float] = defaultdict(float)


def wrap(obj: Any, name: str, label: str) -> None:
    """Add the CPU time of every call of `obj.name` to ACC[label] (if `obj` has it)."""
    f = getattr(obj, name, None)
    if f is None:
        return

    def timed(*a: Any, **k: Any) -> Any:
        c = time.process_time()
        try:
            return f(*a, **k)
        finally:
            ACC[label] += time.process_time() - c

    setattr(obj, name, timed)


def main(n: int) -> None:
    _one_thread()
    import kisim.env.episode as E
    import twin.backend as B
    import twin.dataplane as D
    import twin.kernel as K
    import twin.observe as O

    for obj, name, label in [
        (B.TwinBackend, "reset", "reset"), (B.TwinBackend, "_window", "window"),
        (D.DataPlane, "cut", "  cut"), (O.Observer, "utilisation", "  utilisation"),
        (D.DataPlane, "queue_length", "  queue_length"), (B, "window_figures", "  figures"),
        (B, "sort_nonnegative", "  sort"), (B, "window_stats_ms", "  stats"),
        (B.TwinBackend, "advance", "advance(all)"), (K, "run_until", "  kernel"),
        (D.DataPlane, "_ensure_draws", "  ensure_draws"), (E, "finish", "finish"),
        (E, "summarize", "  summarize"), (E, "latency_histogram", "  latency_histogram"),
    ]:  # fmt: skip
        wrap(obj, name, label)
    sc = bench_scenario()
    for s in (WARMUP_SEED, WARMUP_SEED + 1):
        E.run_windows(E.twin_backend(), sc, s)
    ACC.clear()
    tot = []
    for seed in range(n):
        gc.collect()
        c = time.process_time()
        E.run_windows(E.twin_backend(), sc, seed)
        tot.append(time.process_time() - c)
    print(f"run total: mean {sum(tot) / n * 1e3:.2f} ms, "
          f"median {statistics.median(tot) * 1e3:.2f}, min {min(tot) * 1e3:.2f}")  # fmt: skip
    for k, v in ACC.items():
        print(f"{k:22s} {v / n * 1e3:7.3f} ms/run")


if __name__ == "__main__":
    main(int(sys.argv[1]))
