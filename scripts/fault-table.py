"""Write results/faults/table.{md,csv}: every policy on every fault scenario (and the
fault-free references), from the evaluations' summary.csv files.

Usage: .venv/bin/python scripts/fault-table.py [results/faults]
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

METRICS = ("slo_attainment", "slo_attainment_fault", "slo_attainment_nofault", "p95_ms",
           "cost_per_million", "cost")  # fmt: skip
HEAD = ("SLO att.", "during faults", "outside", "p95 (ms)", "USD / M req.", "USD / run")


def _cells(path: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """policy -> metric -> (mean, 95 % CI half-width)."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    with path.open() as f:
        for r in csv.DictReader(f):
            if r["metric"] in METRICS:
                mean, lo, hi = float(r["mean"]), float(r["ci95_low"]), float(r["ci95_high"])
                out.setdefault(r["policy"], {})[r["metric"]] = (mean, (hi - lo) / 2)
    return out


def _fmt(m: str, v: tuple[float, float] | None) -> str:
    if v is None or math.isnan(v[0]):
        return "—"
    if m.startswith("slo"):
        return f"{100 * v[0]:.1f} ± {100 * v[1]:.1f} %"
    if m == "cost":
        return f"{v[0]:.3f}"
    return f"{v[0]:.1f} ± {v[1]:.1f}" if m == "p95_ms" else f"{v[0]:.3f} ± {v[1]:.3f}"


def main(root: Path) -> None:
    rows = []
    for d in sorted(p for p in root.iterdir() if (p / "summary.csv").is_file()):
        for pol, ms in _cells(d / "summary.csv").items():
            rows.append((d.name, pol, {m: ms.get(m) for m in METRICS}))
    md = ["| scenario | policy | " + " | ".join(HEAD) + " |",
          "| --- | --- |" + " ---: |" * len(HEAD)]  # fmt: skip
    for sc, pol, ms in rows:
        md.append(f"| {sc} | {pol.split('/')[-2] if pol.startswith('ppo:') else pol} | "
                  + " | ".join(_fmt(m, ms[m]) for m in METRICS) + " |")  # fmt: skip
    (root / "table.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    with (root / "table.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "policy", *(f"{m}_{s}" for m in METRICS for s in ("mean", "ci95"))])
        for sc, pol, ms in rows:
            w.writerow([sc, pol, *(x for m in METRICS for x in (ms[m] or (math.nan, math.nan)))])
    print(root / "table.md")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/faults"))
