"""runs.csv -> summary.csv: per variant and round (and over all rounds) the median and least
CPU ms a run, requests per CPU second and per wall second, the share of a core, the load.

    python results/scale/short-runs/summarize.py runs.csv summary.csv

Also checks that both variants gave every seed the same served count and p99 (the code
changed no number)."""

from __future__ import annotations

import collections
import csv
import statistics as st
import sys


def summarize(rows: list[dict[str, str]]) -> list[dict[str, object]]:
    by: dict[tuple[str, str], list[dict[str, str]]] = collections.defaultdict(list)
    for r in rows:
        by[(r["variant"], r["round"])].append(r)
        by[(r["variant"], "all")].append(r)
    out: list[dict[str, object]] = []
    order = sorted(by, key=lambda k: (k[1] == "all", k[1], k[0] != "before"))
    for v, rd in order:
        rs = by[(v, rd)]
        cpu = [float(r["cpu_s"]) for r in rs]
        wall = [float(r["wall_s"]) for r in rs]
        served = [int(r["served"]) for r in rs]
        load = [float(r["loadavg1"]) for r in rs]
        per_cpu = [s / c for s, c in zip(served, cpu, strict=True)]
        per_wall = [s / w for s, w in zip(served, wall, strict=True)]
        out.append({
            "variant": v, "round": rd, "runs": len(rs),
            "median_cpu_ms": round(st.median(cpu) * 1e3, 2),
            "min_cpu_ms": round(min(cpu) * 1e3, 2),
            "median_requests_per_cpu_s": round(st.median(per_cpu)),
            "median_wall_ms": round(st.median(wall) * 1e3, 1),
            "median_requests_per_wall_s": round(st.median(per_wall)),
            "median_cpu_share": round(st.median(c / w for c, w in zip(cpu, wall, strict=True)), 3),
            "loadavg1_min": min(load), "loadavg1_max": max(load),
        })  # fmt: skip
    return out


def main(src: str, dst: str) -> int:
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    out = summarize(rows)
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0]))
        w.writeheader()
        w.writerows(out)
    seen: dict[tuple[str, str], set[tuple[str, str]]] = collections.defaultdict(set)
    for r in rows:
        seen[(r["round"], r["seed"])].add((r["served"], r["p99_ms"]))
    same = all(len(s) == 1 for s in seen.values())
    print(f"{len(seen)} seeds x rounds: served and p99 identical across variants: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
