#!/usr/bin/env python3
"""Aggregate a request-arrival trace into the rate series the `trace` pattern replays.

    scripts/trace-rate-series.py ../shared/workloads/azure-llm-2023-conv.csv \
        configs/scenarios/suite/data/azure-llm-2023-conv-5s.csv --bin-s 5

Reads the `TIMESTAMP` column (one row per request, UTC, any order), counts the requests in
`--bin-s` bins from the first request's time rounded down to the bin, and writes
`t_s,rate_rps` (bin start in seconds from there, count / bin) - the form
`kisim.core.patterns.Trace` reads. Nothing else of the trace is kept.
"""

from __future__ import annotations

import argparse
import csv
import math
from datetime import datetime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--bin-s", type=float, default=5.0)
    a = ap.parse_args()
    with open(a.src, newline="") as f:
        ts = sorted(datetime.fromisoformat(r["TIMESTAMP"].strip()[:26]).timestamp()
                    for r in csv.DictReader(f))
    t0 = math.floor(ts[0] / a.bin_s) * a.bin_s
    n = int((ts[-1] - t0) // a.bin_s) + 1
    counts = [0] * n
    for t in ts:
        counts[int((t - t0) // a.bin_s)] += 1
    with open(a.dst, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["t_s", "rate_rps"])
        for i, c in enumerate(counts):
            w.writerow([f"{i * a.bin_s:g}", f"{c / a.bin_s:g}"])
    print(f"{len(ts)} requests from {datetime.utcfromtimestamp(t0)} UTC, {n} bins of "
          f"{a.bin_s:g} s -> {a.dst}")


if __name__ == "__main__":
    main()
