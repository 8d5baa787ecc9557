"""``training_progress.png``/``.pdf``: one figure of a training run, from its files alone.

Six panels against environment steps: (a) episode reward - training episodes (rolling
mean of the last 100) and the held-out evaluation (mean with 95 % CI over its episodes)
with the baseline's level dashed; (b) evaluation reward minus the baseline's, per
pattern; (c) episode KPIs of the evaluation - SLO-violation rate and replica-seconds,
with the baseline's dashed; (d) policy entropy; (e) KL - PPO's per-update approx_kl and
the KL between successive evaluated policies, with the action drift; (f) value loss.
The best model and the stop are marked. `kisim train` draws it at the end; it can be
redrawn from OUT at any time (`training_figure(out)`).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from agents.evaluation.figures import STYLE, WIDTH_IN, _save
from agents.training.convergence import half_width
from kisim.core.rundir import read_json

PATTERN_COLORS = {"ramp": "#0072B2", "spike": "#D55E00", "periodic": "#009E73", "random": "#CC79A7"}
_OTHER = ("#E69F00", "#56B4E9", "#F0E442", "#000000")


def _progress(out: Path) -> dict[str, np.ndarray]:
    p = out / "progress.csv"
    if not p.is_file():
        return {}
    with p.open(newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, np.ndarray] = {}
    for k in rows[0] if rows else []:
        vals = []
        for r in rows:
            try:
                vals.append(float(r[k]) if r[k] not in ("", None) else math.nan)
            except ValueError:
                vals.append(math.nan)
        cols[k] = np.asarray(vals)
    return cols


def _series(cols: dict[str, np.ndarray], key: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = cols.get("time/total_timesteps"), cols.get(key)
    if x is None or y is None:
        return np.array([]), np.array([])
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _kpi(evals: list[dict[str, Any]], key: str) -> list[float]:
    """Mean over patterns of one per-pattern KPI, per evaluation."""
    return [float(np.mean([v[key] for v in e["patterns"].values()])) for e in evals]


def _num(xs: list[Any]) -> np.ndarray:
    return np.array([math.nan if x is None else x for x in xs], dtype=float)


def _one_legend(ax: Any, ax2: Any) -> None:
    """One legend for a panel with a second y axis (`twinx`), whose grid is turned off."""
    ax2.grid(False)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=6)


def _line(ax: Any, cols: dict[str, np.ndarray], key: str, color: str, sign: float = 1.0,
          **kw: Any) -> None:  # fmt: skip
    """Plot one progress.csv column against steps, if it was logged."""
    x, y = _series(cols, key)
    if len(x):
        ax.plot(x, sign * y, color=color, **kw)


def training_figure(out: Path) -> list[Path]:
    """Draw OUT/training_progress.{png,pdf}; returns the paths."""
    out = Path(out)
    cols = _progress(out)
    ep = out / "evaluations.json"
    evals: list[dict[str, Any]] = read_json(ep) if ep.is_file() else []
    stopped = read_json(out / "stopped.json") if (out / "stopped.json").is_file() else {}
    baseline = stopped.get("baseline", "baseline")
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_IN, 6.6), layout="constrained")
        ax = fig.subplots(3, 2).ravel()
        ex = np.array([e["timesteps"] for e in evals], dtype=float)

        # (a) reward
        a = ax[0]
        _line(a, cols, "rollout/ep_rew_mean", "#999999", label="training episodes")
        if evals:
            m = np.array([e["mean_reward"] for e in evals])
            hw = np.array([half_width(np.asarray(e["rewards"])) for e in evals])
            a.plot(ex, m, "o-", ms=2.5, color="#D55E00", label="evaluation (95% CI)")
            a.fill_between(ex, m - hw, m + hw, color="#D55E00", alpha=0.2, lw=0)
            a.axhline(evals[-1]["baseline_mean_reward"], color="k", ls="--", lw=0.9, label=baseline)
        a.set_title("(a) episode reward")
        a.set_ylabel("reward per episode")
        a.legend(loc="lower right")

        # (b) vs baseline per pattern
        b = ax[1]
        if evals:
            for i, p in enumerate(evals[0]["patterns"]):
                d = [e["patterns"][p]["reward_diff"] for e in evals]
                col = PATTERN_COLORS.get(p, _OTHER[i % len(_OTHER)])
                b.plot(ex, d, "o-", ms=2, color=col, label=p)
        b.axhline(0, color="k", lw=0.8, ls="--")
        b.set_title(f"(b) evaluation reward minus {baseline}'s, per pattern")
        b.set_ylabel("reward difference")
        b.legend(loc="lower right", ncol=2)

        # (c) KPIs
        c = ax[2]
        if evals:
            slo = _kpi(evals, "slo_violation_rate")
            slo_b = _kpi(evals, "baseline_slo_violation_rate")
            rs, rs_b = _kpi(evals, "replica_s"), _kpi(evals, "baseline_replica_s")
            c.plot(ex, slo, "o-", ms=2, color="#D55E00", label="SLO violations (PPO)")
            c.plot(ex, slo_b, "--", color="#D55E00", lw=0.9, label=f"SLO violations ({baseline})")
            c.set_ylabel("SLO-violation rate")
            c2 = c.twinx()
            c2.plot(ex, rs, "s-", ms=2, color="#0072B2", label="replica-s (PPO)")
            c2.plot(ex, rs_b, "--", color="#0072B2", lw=0.9, label=f"replica-s ({baseline})")
            c2.set_ylabel("replica-seconds per episode")
            _one_legend(c, c2)
        c.set_title("(c) evaluation KPIs (mean over patterns)")

        # (d) entropy
        d = ax[3]
        _line(d, cols, "train/entropy_loss", "#009E73", sign=-1.0)
        d.set_title("(d) policy entropy")
        d.set_ylabel("entropy (nats)")

        # (e) KL and drift
        e = ax[4]
        x, y = _series(cols, "train/approx_kl")
        if len(x):
            e.plot(x, np.maximum(y, 1e-8), color="#999999", label="approx KL per update")
        if evals:
            kl = _num([r["kl"] for r in evals])
            ok = np.isfinite(kl)
            e.plot(ex[ok], np.maximum(kl[ok], 1e-8), "o-", ms=2, color="#CC79A7",
                   label="KL between evaluated policies (per episode)")  # fmt: skip
            dr = _num([r["drift"] for r in evals])
            e2 = e.twinx()
            e2.plot(ex[ok], dr[ok] * 100, "^:", ms=2, color="#E69F00", label="action drift (%)")
            e2.set_ylabel("action drift (%)")
            _one_legend(e, e2)
        e.set_yscale("log")
        e.set_title("(e) policy change")
        e.set_ylabel("KL (nats)")

        # (f) value loss
        f = ax[5]
        _line(f, cols, "train/value_loss", "#0072B2")
        f.set_title("(f) value loss")
        f.set_ylabel("value loss")

        best = stopped.get("best", {}).get("timesteps")
        stop = stopped.get("timesteps")
        for axis in ax:
            axis.set_xlabel("environment steps")
            if best is not None and best >= 0:
                axis.axvline(best, color="#D55E00", lw=0.7, ls=":")
            if stop is not None:
                axis.axvline(stop, color="k", lw=0.7, ls=":")
        kind = stopped.get("kind", "")
        fig.suptitle(f"training progress - stopped: {kind}; "
                     "dotted: best model (orange), stop (black)", fontsize=8)  # fmt: skip
        return _save(fig, out, "training_progress")
