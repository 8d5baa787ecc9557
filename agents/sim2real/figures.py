"""Sim-to-real figures (PNG and PDF): the twin's means against reality's, and per policy the
replicas and p95 over time with the twin's band over seeds drawn under the real runs.

Bands and error bars are Student-t 95 % intervals of the mean over seeds, as in the
evaluation's figures (`agents.evaluation.figures`, whose labels and colours are reused).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy import stats as st

from agents.evaluation.figures import WIDTH_IN, policy_colors
from agents.sim2real.compare import METRICS
from kisim.core.rundir import safe_name

MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def short_labels(policies: Sequence[str]) -> dict[str, str]:
    """Display names: a model path keeps its folder and stem (``ppo:ppo-finetuned/model``);
    other specs (``kpa:0.3:10``) stay as they are; full specs where that is not unique."""
    out = {}
    for p in policies:
        kind, sep, arg = p.partition(":")
        out[p] = f"{kind}:{Path(arg).parent.name}/{Path(arg).stem}" if sep and "/" in arg else p
    return out if len(set(out.values())) == len(out) else {p: p for p in policies}
Timelines = Mapping[tuple[str, str], Sequence[Mapping[str, np.ndarray]]]


def save(fig: Figure, figdir: Path, name: str) -> list[Path]:
    """PNG (200 dpi) and PDF, each through a temporary file and a rename."""
    figdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path, tmp = figdir / f"{name}.{ext}", figdir / f".{name}.{os.getpid()}.{ext}"
        fig.savefig(tmp, format=ext, dpi=200, metadata={"CreationDate": None} if ext == "pdf"
                    else {})  # fmt: skip
        os.replace(tmp, path)
        paths.append(path)
    return paths


def _f(x: object) -> float:
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def fig_twin_vs_real(rows: Sequence[Mapping[str, Any]], policies: Sequence[str],
                     workloads: Sequence[str]) -> Figure:  # fmt: skip
    """One panel per metric: real mean (x) against the twin's (y), 95 % CI bars, y = x."""
    mets = [m for m in METRICS if any(r["metric"] == m.name for r in rows)]
    ncol = 3
    nrow = max(1, math.ceil(len(mets) / ncol))
    fig = Figure(figsize=(WIDTH_IN, 2.3 * nrow + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol)).ravel()
    colors, labels = policy_colors(policies), short_labels(policies)
    handles: dict[str, Any] = {}
    for ax, m in zip(axes, mets, strict=False):
        lo, hi = math.inf, -math.inf
        for r in rows:
            if r["metric"] != m.name:
                continue
            x, y = _f(r["real_mean"]), _f(r["twin_mean"])
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            xe = [[max(0.0, x - _f(r["real_ci95_low"]))], [max(0.0, _f(r["real_ci95_high"]) - x)]]
            ye = [[max(0.0, y - _f(r["twin_ci95_low"]))], [max(0.0, _f(r["twin_ci95_high"]) - y)]]
            xe = [[0.0], [0.0]] if not np.all(np.isfinite(xe)) else xe
            ye = [[0.0], [0.0]] if not np.all(np.isfinite(ye)) else ye
            mk = MARKERS[list(workloads).index(str(r["workload"])) % len(MARKERS)]
            h = ax.errorbar(x, y, xerr=xe, yerr=ye, fmt=mk, color=colors[str(r["policy"])],
                            ms=4, lw=0.8, capsize=1.5)  # fmt: skip
            handles.setdefault(str(r["policy"]), h)
            lo, hi = min(lo, x, y), max(hi, x, y)
        if math.isfinite(lo):
            pad = 0.05 * (hi - lo or abs(hi) or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=0.7, ls="--")
        ax.set_title(m.label, fontsize=8, loc="left")
        ax.set_xlabel("real", fontsize=7)
        ax.set_ylabel("twin", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes[len(mets):]:
        ax.set_visible(False)
    marks = ", ".join(f"{MARKERS[i % len(MARKERS)]} {w}" for i, w in enumerate(workloads))
    fig.suptitle(f"twin vs real: mean ± 95 % CI over seeds; dashed: twin = real ({marks})",
                 fontsize=8)  # fmt: skip
    hs = [handles[p] for p in policies if p in handles]
    fig.legend(hs, [labels[p] for p in policies if p in handles], loc="outside lower center",
               ncols=min(len(hs), 5), frameon=False, fontsize=7)  # fmt: skip
    return fig


def _band(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = np.sum(np.isfinite(stack), axis=0)
        mean = np.nanmean(stack, axis=0)
        sd = np.nanstd(stack, axis=0, ddof=1)
        tq = np.where(n >= 2, st.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)
        half = tq * sd / np.sqrt(np.maximum(n, 1))
    return mean, mean - half, mean + half


def _replicas(t: Mapping[str, np.ndarray]) -> np.ndarray:
    cols = [c for c in t if c.endswith("_ready") and f"{c[:-6]}_desired" in t]
    return np.sum([np.asarray(t[c], float) for c in cols], axis=0) if cols else np.array([])


def fig_timeseries(policy: str, workload: str, twin: Sequence[Mapping[str, np.ndarray]],
                   real: Sequence[Mapping[str, np.ndarray]],
                   slo_ms: float | None) -> Figure:  # fmt: skip
    """Ready replicas (all pools) and window p95 over time: the twin's mean and 95 % band over
    seeds (grey), each real run (thin) and their mean (thick); a window's value holds over
    the window, drawn as a step ending at its end."""
    fig = Figure(figsize=(WIDTH_IN, 4.2), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    series = (("replicas", _replicas), ("p95", lambda t: np.asarray(t["latency_p95_ms"], float)))
    for ax, (name, get) in zip(axes, series, strict=True):
        for side, runs, color in (("twin", twin, "0.45"), ("real", real, "tab:red")):
            runs = [r for r in runs if len(r.get("t_end", []))]
            if not runs:
                continue
            k = min(len(r["t_end"]) for r in runs)
            x = np.asarray(runs[0]["t_end"][:k], float) / 60.0
            ys = np.vstack([get(r)[:k] for r in runs])
            if side == "twin":
                m, lo, hi = _band(ys)
                ax.plot(x, m, color=color, lw=1.2, label="twin mean", drawstyle="steps-pre")
                ax.fill_between(x, lo, hi, color=color, alpha=0.25, lw=0, step="pre",
                                label="twin 95 % CI over seeds")  # fmt: skip
            else:
                for i, y in enumerate(ys):
                    ax.plot(x, y, color=color, lw=0.6, alpha=0.5, drawstyle="steps-pre",
                            label="real runs" if i == 0 else None)  # fmt: skip
                ax.plot(x, np.nanmean(ys, axis=0), color=color, lw=1.6, label="real mean",
                        drawstyle="steps-pre")  # fmt: skip
        if name == "p95" and slo_ms:
            ax.axhline(slo_ms, color="0.3", ls="--", lw=0.8, label="SLO")
    axes[0].set_ylabel("ready replicas")
    axes[1].set_ylabel("window p95 (ms)")
    axes[1].set_xlabel("time (min)")
    axes[0].set_title(f"{short_labels([policy])[policy]} on {workload}: twin band vs real runs",
                      loc="left", fontsize=9)  # fmt: skip
    axes[0].legend(fontsize=7, frameon=False, ncols=4)
    return fig


def render_figures(figdir: Path, rows: Sequence[Mapping[str, Any]], policies: Sequence[str],
                   workloads: Sequence[str], twin_tl: Timelines, real_tl: Timelines,
                   slo_ms: float | None) -> list[Path]:  # fmt: skip
    """Every figure of the report; returns the PNG and PDF paths."""
    import matplotlib

    matplotlib.use("Agg")
    paths = save(fig_twin_vs_real(rows, policies, workloads), figdir, "twin-vs-real")
    for w in workloads:
        for p in policies:
            tw, rl = twin_tl.get((p, w), []), real_tl.get((p, w), [])
            if not tw and not rl:
                continue
            fig = fig_timeseries(p, w, tw, rl, slo_ms)
            paths += save(fig, figdir, f"timeseries-{safe_name(w)}-{safe_name(p)}")
    return paths
