"""``summary.csv`` of a sweep: one row per complete run, in grid order x policies x seeds.

Columns: one per swept key (the value as typed), ``policy``, ``seed``, then every metric of
the runs' summaries in the evaluation's order (`agents.evaluation.report.metric_order`).
Values are written by `kisim.core.rundir.write_csv` (``repr`` floats), so the file is a pure
function of the run directories: the same bytes whichever executor ran them.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.evaluation.report import metric_order, metric_values
from agents.sweep.grid import Point, label
from kisim.core.rundir import is_complete, read_summary, run_path, write_csv


def rows(out: Path, pts: Sequence[Point], policies: Sequence[str], seeds: Sequence[int]
         ) -> tuple[list[dict[str, Any]], list[str]]:  # fmt: skip
    """The rows of every complete run and the metric columns (union over the runs)."""
    found: list[dict[str, Any]] = []
    names: set[str] = set()
    for pt in pts:
        for pol in policies:
            for s in seeds:
                d = run_path(out, pol, label(pt), s)
                if not is_complete(d):
                    continue
                vals = metric_values(read_summary(d))
                names |= set(vals)
                found.append({**dict(pt), "policy": pol, "seed": int(s), **vals})
    return found, metric_order(names)


def write_summary(out: Path, keys: Sequence[str], found: list[dict[str, Any]],
                  metrics: Sequence[str]) -> Path:  # fmt: skip
    cols = [*keys, "policy", "seed", *metrics]
    nan = float("nan")
    write_csv(out / "summary.csv", [{c: r.get(c, nan) for c in cols} for r in found], cols)
    return out / "summary.csv"


def read_summary_csv(path: Path) -> list[dict[str, str]]:
    """The rows as text (the heat maps and tests read them back)."""
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
