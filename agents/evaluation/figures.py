"""Publication figures of an evaluation (matplotlib Agg, PNG 300 dpi + PDF, Type 42 fonts).

Figures are drawn on `matplotlib.figure.Figure` objects and rendered by the Agg
canvas, never through pyplot, so they need no display, work in worker processes
and leave the caller's backend alone. A policy keeps its colour in
every figure (and across evaluations for the known baselines: Okabe-Ito palette).
Bands and error bars are always the Student-t 95 % CI of the mean over seeds.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from scipy import stats as st

from kisim.core.rundir import safe_name

METRICS: dict[str, tuple[str, str, str]] = {
    # name: (label, unit, better) - better is "lower", "higher" or "" (neither)
    "p50_ms": ("p50 latency", "ms", "lower"),
    "p95_ms": ("p95 latency", "ms", "lower"),
    "p99_ms": ("p99 latency", "ms", "lower"),
    "mean_ms": ("mean latency", "ms", "lower"),
    "mean_wait_ms": ("mean queue wait", "ms", "lower"),
    "throughput_rps": ("throughput", "req/s", "higher"),
    "success_rate": ("success rate", "", "higher"),
    "slo_violation_rate": ("SLO violation rate", "", "lower"),
    "slo_attainment": ("SLO attainment (requests)", "", "higher"),
    "p95_attainment": ("windows meeting the p95 SLO", "", "higher"),
    "cost": ("cost", "USD", "lower"),
    "cost_per_million": ("cost per million requests", "USD", "lower"),
    "replica_s": ("replica-seconds, all pools", "s", "lower"),
    "mean_batch_size": ("mean batch size", "items", ""),
    "offered": ("requests offered", "", ""),
    "served": ("requests served", "", "higher"),
    "errors": ("errors", "", "lower"),
    "cpu_util": ("CPU utilisation", "", ""),
    "mem_util": ("memory utilisation", "", ""),
    "gpu_util": ("GPU utilisation", "", ""),
    "pending_pod_s": ("pending pod-seconds", "s", "lower"),
    "scaling_actions": ("scaling actions", "", "lower"),
    "duration_s": ("duration", "s", ""),
}
POOL_METRICS: dict[str, tuple[str, str, str]] = {
    # per-pool summary keys <pool><suffix>: (label after the pool's name, unit, better)
    "_replica_s": ("replica-seconds", "s", "lower"),
    "_ready_mean": ("replicas ready (mean)", "", ""),
    "_cost": ("cost", "USD", "lower"),
}


def pool_label(pool: str) -> str:
    """How a pool is named in figures: the seed layout's as GPU / CPU, others as named."""
    return {"gpu": "GPU", "cpu": "CPU"}.get(pool, pool)


def metric_info(metric: str) -> tuple[str, str, str]:
    """(label, unit, better) of a summary metric, per-pool ones included."""
    if metric in METRICS:
        return METRICS[metric]
    for suffix, (label, unit, better) in POOL_METRICS.items():
        if metric.endswith(suffix) and metric != suffix[1:]:
            return f"{pool_label(metric[: -len(suffix)])} {label}", unit, better
    return metric.replace("_", " "), "", ""


def bar_metrics(have: set[str]) -> list[str]:
    """The metrics of the bar figure: latency, SLO, throughput, success, each pool's
    replica-seconds (in the order the summaries list them), scaling actions."""
    pools = [m for m in have if m.endswith("_replica_s") and m != "replica_s"]
    order = ["p95_ms", "p99_ms", "slo_violation_rate", "throughput_rps", "success_rate",
             "cost_per_million", *sorted(pools, key=_pool_order), "scaling_actions"]  # fmt: skip
    return [m for m in order if m in have]


def _pool_order(metric: str) -> tuple[int, str]:
    """`gpu` first, `cpu` last, other pools by name between them."""
    return ({"gpu_replica_s": 0, "cpu_replica_s": 2}.get(metric, 1), metric)
KNOWN_COLORS: dict[str, str] = {  # Okabe-Ito, colour-blind safe
    "hpa": "#000000", "static": "#999999", "static-gpu": "#0072B2", "static-cpu": "#56B4E9",
    "threshold": "#E69F00", "kpa": "#009E73", "oracle": "#CC79A7", "ppo": "#D55E00",
}  # fmt: skip
_EXTRA = ("#882255", "#44AA99", "#DDCC77", "#117733", "#332288", "#AA4499", "#88CCEE")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
STYLE: dict[str, Any] = {
    "font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8, "legend.fontsize": 7.5,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.5,
    "lines.linewidth": 1.2, "pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": 300,
}  # fmt: skip
WIDTH_IN = 7.0  # double-column width


def metric_label(metric: str) -> str:
    label, unit, _ = metric_info(metric)
    return f"{label} ({unit})" if unit else label


def short_labels(policies: Sequence[str]) -> dict[str, str]:
    """Display labels: `ppo:/a/b/model.zip` -> `ppo:model` when that stays unique."""
    out = {}
    for p in policies:
        kind, sep, arg = p.partition(":")
        out[p] = f"{kind}:{Path(arg).stem}" if sep and ("/" in arg or "." in arg) else p
    if len(set(out.values())) < len(out):
        return {p: p for p in policies}
    return out


def policy_colors(policies: Sequence[str]) -> dict[str, str]:
    """Fixed colours for known baselines (by name before ':'), the rest in order."""
    colors, extra = {}, iter(_EXTRA * 4)
    used: set[str] = set()
    for p in policies:
        c = KNOWN_COLORS.get(p.partition(":")[0])
        colors[p] = c if c and c not in used else next(extra)
        used.add(colors[p])
    return colors


def _plain_log(axis: Any) -> None:
    """Log axes labelled 20, 50, 100 rather than 2x10^1."""
    f = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(f)
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if _lead(v) in (2, 5) else ""))


def _lead(v: float) -> int:
    return round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0


def _save(fig: Figure, figdir: Path, name: str) -> list[Path]:
    """PNG (300 dpi) and PDF, each via a temporary file and a rename."""
    figdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path, tmp = figdir / f"{name}.{ext}", figdir / f".{name}.{os.getpid()}.{ext}"
        meta = {"CreationDate": None} if ext == "pdf" else {}
        fig.savefig(tmp, format=ext, dpi=300, metadata=meta)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def _band(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise mean and Student-t 95 % CI over seeds (rows); NaN where n < 2."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = np.sum(np.isfinite(stack), axis=0)
        mean = np.nanmean(stack, axis=0)
        sd = np.nanstd(stack, axis=0, ddof=1)
        tq = np.where(n >= 2, st.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)
        half = tq * sd / np.sqrt(np.maximum(n, 1))
    return mean, mean - half, mean + half


def _stack(timelines: Sequence[Mapping[str, np.ndarray]], col: str) -> np.ndarray:
    k = min(len(t[col]) for t in timelines)
    return np.vstack([np.asarray(t[col][:k], float) for t in timelines])


def _timeline_pools(timelines: Sequence[Mapping[str, np.ndarray]]) -> list[str]:
    """Pools with a ``<pool>_ready`` column in any timeline, in first-seen order."""
    out: list[str] = []
    for t in timelines:
        for c in t:
            if c.endswith("_desired"):
                pool = c[: -len("_desired")]
                if pool not in out and f"{pool}_ready" in t:
                    out.append(pool)
    return out


def _legend(fig: Figure, policies: Sequence[str], labels: Mapping[str, str], handles: dict) -> None:
    hs = [handles[p] for p in policies if p in handles]
    fig.legend(hs, [labels[p] for p in policies if p in handles], loc="outside upper center",
               ncols=min(len(hs), 6), frameon=False)  # fmt: skip


def fig_timeseries(
    pattern: str,
    timelines: Mapping[str, Sequence[Mapping[str, np.ndarray]]],
    policies: Sequence[str],
    labels: Mapping[str, str],
    colors: Mapping[str, str],
    load_unit: str = "users",
    slo_ms: float | None = None,
    faults: Sequence[tuple[float, float, str]] = (),
) -> Figure:
    """Load, ready replicas per pool and p95 over time; line = mean, band = 95 % CI over seeds.

    One replica panel per pool found in the timelines (``<pool>_ready`` columns); fault
    windows (start s, end s, kind) shaded on every panel."""
    everything = [t for p in policies for t in timelines.get(p, [])]
    pools = _timeline_pools(everything)
    fig = Figure(figsize=(WIDTH_IN, 6.2 + 1.3 * max(0, len(pools) - 2)), layout="constrained")
    axes = fig.subplots(2 + len(pools), 1, sharex=True)
    handles: dict[str, Any] = {}
    if everything:  # the load is the pattern's: the same for every policy under CRN
        x = _stack(everything, "t_end")[0] / 60.0
        m, lo, hi = _band(_stack(everything, "load_level"))
        axes[0].plot(x, m, color="0.3", lw=1.2)
        axes[0].fill_between(x, lo, hi, color="0.3", alpha=0.2, lw=0)
    cols = [f"{pool}_ready" for pool in pools] + ["latency_p95_ms"]
    for p in policies:
        runs = timelines.get(p, [])
        if not runs:
            continue
        # a window's value holds over [t_start, t_end): steps from t_start, closed at the end
        x = _stack(runs, "t_start")[0] / 60.0
        x = np.append(x, _stack(runs, "t_end")[0][-1] / 60.0)
        for ax, col in zip(axes[1:], cols, strict=True):
            if not all(col in r for r in runs):
                continue
            m, lo, hi = (np.append(v, v[-1]) for v in _band(_stack(runs, col)))
            (h,) = ax.plot(x, m, color=colors[p], drawstyle="steps-post")
            ax.fill_between(x, lo, hi, color=colors[p], alpha=0.15, lw=0, step="post")
            handles[p] = h
    for ax in axes[1 : 1 + len(pools)]:  # replica counts: integer ticks from zero
        ax.set_ylim(0, max(ax.get_ylim()[1], 1.0) * 1.08)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    p95 = axes[-1]
    if slo_ms:
        p95.axhline(slo_ms, color="0.4", ls="--", lw=0.8)
        p95.annotate("SLO", (0.995, slo_ms), xycoords=("axes fraction", "data"), ha="right",
                     va="bottom", fontsize=7, color="0.3")  # fmt: skip
    ys = [ln.get_ydata() for ln in p95.get_lines()]
    vals = np.concatenate([np.asarray(y, float) for y in ys]) if ys else np.array([])
    if np.any(np.isfinite(vals)) and np.nanmin(vals) > 0 and np.nanmax(vals) > 10 * np.nanmin(vals):
        p95.set_yscale("log")  # only when the latency spans a decade or more
        _plain_log(p95.yaxis)
    axes[0].set_ylabel(f"offered load\n({load_unit})")
    for ax, pool in zip(axes[1:], pools, strict=False):
        ax.set_ylabel(f"{pool_label(pool)} replicas\nready")
    p95.set_ylabel("p95 latency\n(ms)")
    p95.set_xlabel("time (min)")
    axes[0].set_title(f"{pattern} — line: mean over seeds; band: 95 % CI of the mean", loc="left")
    mark_faults(axes, faults)
    _legend(fig, policies, labels, handles)
    return fig


FAULT_COLOR = "#d62728"


def mark_faults(axes: Sequence[Any], faults: Sequence[tuple[float, float, str]]) -> None:
    """Shade every fault window (times in s, axes in minutes) and name its kind on top."""
    for start, end, kind in faults:
        for ax in axes:
            ax.axvspan(start / 60.0, end / 60.0, color=FAULT_COLOR, alpha=0.10, lw=0, zorder=0)
        axes[0].annotate(kind.replace("_", " "), (start / 60.0, 1.0),
                         xycoords=("data", "axes fraction"), xytext=(2, -2),
                         textcoords="offset points", ha="left", va="top", fontsize=6,
                         color=FAULT_COLOR)  # fmt: skip


def _lookup(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    return {(str(r["policy"]), str(r["pattern"]), str(r["metric"])): r for r in rows}


def _err(r: Mapping[str, Any] | None) -> tuple[float, float, float]:
    if r is None:
        return math.nan, 0.0, 0.0
    m, lo, hi = float(r["mean"]), float(r["ci95_low"]), float(r["ci95_high"])
    return m, (m - lo) if math.isfinite(lo) else 0.0, (hi - m) if math.isfinite(hi) else 0.0


def fig_bars(
    rows: Sequence[Mapping[str, Any]],
    policies: Sequence[str],
    patterns: Sequence[str],
    metrics: Sequence[str],
    labels: Mapping[str, str],
    colors: Mapping[str, str],
) -> Figure:
    """Small multiples, one panel per metric: bar = mean, whisker = 95 % CI, by pattern."""
    look = _lookup(rows)
    ncol = min(4, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig = Figure(figsize=(WIDTH_IN, 1.9 * nrow + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    width = 0.8 / max(len(policies), 1)
    handles: dict[str, Any] = {}
    for ax, met in zip(axes, metrics, strict=False):
        for i, p in enumerate(policies):
            vals = [_err(look.get((p, pat, met))) for pat in patterns]
            xs = np.arange(len(patterns)) - 0.4 + width * (i + 0.5)
            h = ax.bar(xs, [v[0] for v in vals], width, color=colors[p], alpha=0.9,
                       yerr=np.array([[v[1] for v in vals], [v[2] for v in vals]]),
                       error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "0.2"})  # fmt: skip
            handles[p] = h
        ax.set_xticks(np.arange(len(patterns)), patterns, rotation=30, ha="right",
                      rotation_mode="anchor")  # fmt: skip
        ax.set_title(metric_label(met))
        ax.grid(axis="x", visible=False)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    _legend(fig, policies, labels, handles)
    return fig


def fig_cdf(
    hists: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    policies: Sequence[str],
    patterns: Sequence[str],
    labels: Mapping[str, str],
    colors: Mapping[str, str],
    slo_ms: Mapping[str, float] | None = None,
) -> Figure:
    """Latency CDF per pattern from histograms pooled over seeds (completed requests)."""
    ncol = min(len(patterns), 4)
    nrow = math.ceil(len(patterns) / ncol)
    fig = Figure(figsize=(WIDTH_IN, 2.2 * nrow + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False, sharey=True)).ravel()
    handles: dict[str, Any] = {}
    for ax, pat in zip(axes, patterns, strict=False):
        lo_x, hi_x = math.inf, 0.0
        for p in policies:
            if (p, pat) not in hists:
                continue
            edges, counts = hists[(p, pat)]
            total = counts.sum()
            if total <= 0:
                continue
            nz = np.flatnonzero(counts)
            lo_x, hi_x = min(lo_x, edges[nz[0]]), max(hi_x, edges[nz[-1] + 1])
            cdf = np.concatenate([[0.0], np.cumsum(counts) / total])
            (h,) = ax.plot(edges, cdf, color=colors[p], drawstyle="steps-post")
            handles[p] = h
        if slo_ms and pat in slo_ms:
            ax.axvline(slo_ms[pat], color="0.4", ls="--", lw=0.8)
        ax.set_xscale("log")
        _plain_log(ax.xaxis)
        if hi_x > lo_x:
            ax.set_xlim(lo_x, hi_x)
        ax.set_title(pat)
        ax.set_xlabel("latency (ms)")
    for ax in axes[len(patterns) :]:
        ax.set_visible(False)
    axes[0].set_ylabel("fraction of requests ≤ x")
    _legend(fig, policies, labels, handles)
    return fig


def fig_tradeoff(
    rows: Sequence[Mapping[str, Any]],
    policies: Sequence[str],
    patterns: Sequence[str],
    labels: Mapping[str, str],
    colors: Mapping[str, str],
    x_metric: str = "replica_s",
    y_metric: str = "slo_violation_rate",
) -> Figure:
    """Cost vs quality per pattern: mean with 95 % CI crosses; lower-left is better."""
    look = _lookup(rows)
    ncol = min(len(patterns), 4)
    nrow = math.ceil(len(patterns) / ncol)
    fig = Figure(figsize=(WIDTH_IN, 2.3 * nrow + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    handles: dict[str, Any] = {}
    for ax, pat in zip(axes, patterns, strict=False):
        for i, p in enumerate(policies):
            xm, xl, xh = _err(look.get((p, pat, x_metric)))
            ym, yl, yh = _err(look.get((p, pat, y_metric)))
            if not (math.isfinite(xm) and math.isfinite(ym)):
                continue
            h = ax.errorbar(
                [xm],
                [ym],
                xerr=[[xl], [xh]],
                yerr=[[yl], [yh]],
                color=colors[p],
                marker=MARKERS[i % len(MARKERS)],
                ms=4.5,
                lw=0.9,
                capsize=1.5,
            )
            handles[p] = h
        ax.set_title(pat)
        ax.margins(0.15)
        ax.annotate(
            "better",
            xy=(0.04, 0.04),
            xytext=(0.2, 0.2),
            xycoords="axes fraction",
            fontsize=6.5,
            color="0.4",
            arrowprops={"arrowstyle": "->", "color": "0.5"},
        )
    for ax in axes[len(patterns) :]:
        ax.set_visible(False)
    axes[0].set_ylabel(metric_label(y_metric))
    fig.supxlabel(metric_label(x_metric), fontsize=8)
    _legend(fig, policies, labels, handles)
    return fig


def render_figures(
    out: Path,
    rows: Sequence[Mapping[str, Any]],
    policies: Sequence[str],
    patterns: Sequence[str],
    timelines: Mapping[tuple[str, str], Sequence[Mapping[str, np.ndarray]]] | None = None,
    hists: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]] | None = None,
    slo_ms: Mapping[str, float] | None = None,
    load_unit: str = "users",
    faults: Mapping[str, Sequence[tuple[float, float, str]]] | None = None,
) -> list[Path]:
    """Every figure into OUT/figures; time series and CDFs only when run data is given; time
    series shade the pattern's fault windows (`faults`: pattern -> (start s, end s, kind))."""
    figdir = Path(out) / "figures"
    labels, colors = short_labels(policies), policy_colors(policies)
    have = {str(r["metric"]) for r in rows}
    paths: list[Path] = []
    with matplotlib.rc_context(STYLE):
        for pat in patterns if timelines else ():
            tl = {p: timelines.get((p, pat), []) for p in policies}
            if any(tl.values()):
                fig = fig_timeseries(pat, tl, policies, labels, colors, load_unit,
                                     (slo_ms or {}).get(pat),
                                     (faults or {}).get(pat, ()))  # fmt: skip
                paths += _save(fig, figdir, f"timeseries_{safe_name(pat)}")
        metrics = bar_metrics(have)
        if metrics:
            paths += _save(fig_bars(rows, policies, patterns, metrics, labels, colors),
                           figdir, "metrics_ci")  # fmt: skip
        if hists:
            paths += _save(fig_cdf(hists, policies, patterns, labels, colors, slo_ms),
                           figdir, "latency_cdf")  # fmt: skip
        if {"replica_s", "slo_violation_rate"} <= have:
            paths += _save(fig_tradeoff(rows, policies, patterns, labels, colors),
                           figdir, "tradeoff")  # fmt: skip
    return paths
