"""Heat maps of a sweep: one figure per metric, one panel per policy, over two swept keys.

Each cell is the metric's mean over seeds (and over the values of any other swept key, as the
title says), from the same rows as ``summary.csv``; panels share one colour scale so policies
compare at a glance. A sweep of one key draws it against the policies instead. Drawn on
`matplotlib.figure.Figure` with the Agg canvas (no display, no pyplot), saved as PNG (300 dpi)
and PDF next to the CSV, each through a temporary file and a rename.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from agents.evaluation.figures import metric_label
from agents.sweep.grid import Param


def grid_means(found: Sequence[dict[str, Any]], metric: str, x: Param, y: Param | None,
               policy: str) -> np.ndarray:  # fmt: skip
    """Mean of `metric` per (y value, x value) cell for one policy; NaN where no run."""
    ny = len(y.texts) if y is not None else 1
    sums, counts = np.zeros((ny, len(x.texts))), np.zeros((ny, len(x.texts)))
    for r in found:
        v = r.get(metric)
        if r["policy"] != policy or not isinstance(v, float) or not math.isfinite(v):
            continue
        i = y.texts.index(r[y.key]) if y is not None else 0
        j = x.texts.index(r[x.key])
        sums[i, j] += v
        counts[i, j] += 1
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _save(fig: Figure, figdir: Path, name: str) -> list[Path]:
    figdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path, tmp = figdir / f"{name}.{ext}", figdir / f".{name}.{os.getpid()}.{ext}"
        fig.savefig(tmp, format=ext, dpi=300, metadata={"CreationDate": None} if ext == "pdf"
                    else {})  # fmt: skip
        os.replace(tmp, path)
        paths.append(path)
    return paths


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return ""
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def heatmap(found: Sequence[dict[str, Any]], metric: str, x: Param, y: Param | None,
            policies: Sequence[str], others: Sequence[str],
            figdir: Path) -> list[Path]:  # fmt: skip
    """``figdir/heatmap-<metric>.{png,pdf}``."""
    grids = [grid_means(found, metric, x, y, p) for p in policies]
    finite = np.concatenate([g[np.isfinite(g)] for g in grids]) if grids else np.array([])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    n = len(policies)
    fig = Figure(figsize=(min(3.2 * n + 1.2, 14.0), 2.9 if y is not None else 1.9),
                 layout="constrained")  # fmt: skip
    axes = fig.subplots(1, n, squeeze=False)[0]
    im = None
    for ax, pol, g in zip(axes, policies, grids, strict=True):
        im = ax.imshow(g, origin="lower", aspect="auto", cmap="viridis", vmin=lo, vmax=hi)
        for (i, j), v in np.ndenumerate(g):
            shade = (v - lo) / (hi - lo) if math.isfinite(v) else 0.0
            ax.text(j, i, _fmt(v), ha="center", va="center", fontsize=7,
                    color="black" if shade > 0.6 else "white")  # fmt: skip
        ax.set_xticks(range(len(x.texts)), list(x.texts))
        ax.set_xlabel(x.key, fontsize=8)
        if y is not None:
            ax.set_yticks(range(len(y.texts)), list(y.texts))
            ax.set_ylabel(y.key, fontsize=8)
        else:
            ax.set_yticks([])
        ax.set_title(pol, fontsize=9)
        ax.tick_params(labelsize=7)
    if im is not None:
        cb = fig.colorbar(im, ax=list(axes), shrink=0.9)
        cb.set_label(metric_label(metric), fontsize=8)
        cb.ax.tick_params(labelsize=7)
    extra = f"; mean over {', '.join(others)} too" if others else ""
    fig.suptitle(f"{metric_label(metric)}: mean over seeds{extra}", fontsize=9)
    return _save(fig, figdir, f"heatmap-{metric}")
