#!/usr/bin/env python
"""How a policy's SLO misses are spread over quiet and busy windows: per policy of an
evaluation folder, the mean of each window's share of missed requests (what the `cost`
reward's SLO term averages) beside the share of all requests that missed (what SLO
attainment counts). A ratio well above 1 means the misses sit in the busy windows, where
`cost` looks least (docs/environment.md, `cost_requests`; docs/benchmark.md, "cpu-fleet").

    .venv/bin/python scripts/miss-weighting.py results/benchmark/cpu-fleet/eval
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from kisim.core.rundir import collect_runs, read_timeline


def shares(out: Path) -> dict[str, tuple[float, float, int]]:
    """policy -> (mean per-window miss share, per-request miss share, runs), over its runs."""
    acc: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in collect_runs(out):
        tl = read_timeline(r.path)
        answered = tl["served"] + tl["errors"]
        misses, ok = tl["slo_violations"], answered > 0
        acc[r.policy].append((float(np.mean(misses[ok] / answered[ok])),
                              float(misses.sum() / answered.sum())))  # fmt: skip
    return {p: (float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v])), len(v))
            for p, v in sorted(acc.items())}  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / "runs").is_dir():
        print("usage: miss-weighting.py EVAL_DIR (a folder with runs/)", file=sys.stderr)
        return 2
    print("| policy | per-window miss share | per-request miss share | ratio | runs |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for p, (w, q, n) in shares(Path(argv[0])).items():
        print(f"| `{p}` | {w:.2%} | {q:.2%} | {q / w if w else float('nan'):.2f} | {n} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
