"""Importing the twin benchmark (test collection does) must not change the process."""

from __future__ import annotations

import os
import subprocess
import sys

# what a thread pool reads when it starts (bench.twin_bench.THREAD_VARS sets them to 1)
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def test_import_sets_no_thread_variables() -> None:
    """The one-thread limits belong to the benchmark run (`bench_twin`), not to import."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    code = f"import os, bench.twin_bench; print([v for v in {THREAD_VARS!r} if v in os.environ])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
