"""One measuring process: N timed runs of `kisim bench twin`'s scenario, CSV rows on stdout.

Run with PYTHONPATH set to the source tree under test (this file imports nothing of its
own), one process per variant and round (`measure.sh` alternates them). Each run is what
`kisim bench twin` times: `run_windows(twin_backend(), scenario, seed)`, reset and summary
included, after two untimed warm-up runs (numba cache load), `gc.collect()` before each.
"""

from __future__ import annotations

import gc
import os
import sys
import time

from bench.twin_bench import WARMUP_SEED, _one_thread, bench_scenario


def main(variant: str, rnd: int, n: int) -> None:
    _one_thread()
    from kisim.env.episode import run_windows, twin_backend

    sc = bench_scenario()
    for s in (WARMUP_SEED, WARMUP_SEED + 1):
        run_windows(twin_backend(), sc, s)
    for seed in range(n):
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        ep = run_windows(twin_backend(), sc, seed)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{variant},{rnd},{seed},{int(ep.summary['served'])},{cpu:.6f},{wall:.6f},"
              f"{os.getloadavg()[0]:.2f},{ep.summary['p99_ms']!r}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
