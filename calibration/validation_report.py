"""Files of a validation: ``validation.json``, ``validation.md``, ``windows-<bundle>.csv``,
``<bundle>.png`` (real vs twin per window) and ``recordings-<bundle>.png`` (every recording of
an experiment and the twin), each also as PDF, written by `write_validation(result, out_dir)`.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from calibration.report import clean, plt_agg, save_figure
from calibration.validate import BANDS, HEADLINE, METRICS, ValidationResult


def validation_md(res: ValidationResult, summary: dict[str, Any]) -> str:
    def pct(x: Any) -> str:
        return (
            "—"
            if x is None or (isinstance(x, float) and not math.isfinite(x))
            else f"{100 * x:.1f} %"
        )

    keys = [HEADLINE[m] for m in METRICS]
    head = "| | " + " | ".join(k.removesuffix("_mape") for k in keys) + " | windows |"
    sep = "| --- " * (len(keys) + 2) + "|"
    rows = [
        "| all windows | "
        + " | ".join(pct(summary[k]) for k in keys)
        + f" | {sum(len(b.t_start) for b in res.bundles)} |"
    ]
    for name, _, _ in BANDS:
        band = summary["bands"][name]
        rows.append(
            f"| util {name} | " + " | ".join(pct(band[k]) for k in keys) + f" | {band['windows']} |"
        )
    rows.append(
        "| whole runs | " + " | ".join(pct(summary["overall_ape"][k]) for k in keys) + " | |"
    )
    rows.append(
        "| noise floor | " + " | ".join(pct(summary["noise_floor"][k]) for k in keys) + " | |"
    )
    floor = summary.get("recording_floor")
    if floor is not None:
        mean = summary["against_mean_of_recordings"]
        rows.append(
            "| recording floor (recording vs recording) | "
            + " | ".join(pct(floor[k]) for k in keys)
            + f" | {len(floor['pairs'])} pairs |"
        )
        rows.append(
            "| twin vs the mean of each experiment's recordings | "
            + " | ".join(pct(mean[k]) for k in keys)
            + f" | {len(mean['experiments'])} experiments |"
        )
    lines = [
        f"# Validation of `{res.config}`",
        "",
        f"{len(res.bundles)} bundle(s), {res.seeds} twin seeds each, {res.window_s:g} s windows. "
        "MAPE = mean over windows of |twin - real| / real (docs/calibration.md).",
        "",
        head,
        sep,
        *rows,
        "",
    ]
    bias = summary.get("bias")
    if bias:
        bm = [m for m in METRICS if m in bias["all"]]
        lines += [
            "Signed bias, mean of (twin - real) / real per window (duration-weighted): latency "
            "> 0 = the twin is too slow, throughput < 0 = it serves too little.",
            "",
            "| | " + " | ".join(HEADLINE[m].removesuffix("_mape") for m in bm) + " |",
            "| --- " * (len(bm) + 1) + "|",
            *(
                f"| {'all windows' if name == 'all' else 'util ' + name} | "
                + " | ".join(pct(bias[name].get(m)) for m in bm)
                + " |"
                for name in ("all", *(n for n, _, _ in BANDS))
            ),
            "",
        ]
    if floor is not None:
        lines += [
            "Recording floor: MAPE of another recording of the same experiment against the "
            f"validated one, per window ({len(floor['pairs'])} ordered pairs of "
            f"{len({a for a, _ in floor['pairs']})} recordings; validation.json lists them). "
            "A twin at this floor predicts a recording as well as repeating the "
            "experiment does. Against the mean of an experiment's recordings (per window), "
            "most of one recording's host drift and sampling noise averages out and the twin's "
            "own error remains (docs/calibration.md).",
            "",
        ]
    if res.held_in:
        lines += [f"**Not held out**: the calibration was fitted on {', '.join(res.held_in)}.", ""]
    if res.repeats_of_fit:
        lines += [
            f"**Held-out recordings of fitted experiments**: {', '.join(res.repeats_of_fit)} "
            "repeat a schedule and configuration the calibration was fitted on.",
            "",
        ]
    lines += [
        "## Per bundle",
        "",
        "| bundle | mean util | " + " | ".join(k.removesuffix("_mape") for k in keys) + " |",
        "| --- " * (len(keys) + 2) + "|",
    ]
    for name, b in summary["per_bundle"].items():
        lines.append(
            f"| {name} | {pct(b['mean_util'])} | " + " | ".join(pct(b[k]) for k in keys) + " |"
        )
    lines += [""] + [f"![{b.name}]({b.name}.png)" for b in res.bundles]
    lines += [f"![{e.experiment}](recordings-{e.experiment}.png)" for e in res.experiments]
    return "\n".join(lines) + "\n"


def write_validation(res: ValidationResult, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = res.summary()
    written = []
    p = out_dir / "validation.json"
    p.write_text(json.dumps(clean(summary), indent=2))
    written.append(p)
    p = out_dir / "validation.md"
    p.write_text(validation_md(res, summary))
    written.append(p)
    for b in res.bundles:
        p = out_dir / f"windows-{b.name}.csv"
        with p.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                ["t_start", "t_end", "util", "real_completions"]
                + [f"{s}_{m}" for m in METRICS for s in ("real", "twin")]
            )
            for i in range(len(b.t_start)):
                w.writerow(
                    [
                        f"{b.t_start[i]:.3f}",
                        f"{b.t_end[i]:.3f}",
                        f"{b.util[i]:.4f}",
                        int(b.n_real[i]),
                    ]
                    + [f"{v:.6g}" for m in METRICS for v in (b.real[m][i], b.twin_mean(m)[i])]
                )
        written.append(p)
        written.append(_window_figure(b, out_dir / f"{b.name}.png"))
    for e in res.experiments:
        written.append(_recordings_figure(e, out_dir / f"recordings-{e.experiment}.png"))
    return written


RECORDING_COLOURS = ("k", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:grey")


def _recordings_figure(e: Any, path: Path) -> Path:
    """Every recording of one experiment and the twin, per window: the recording floor seen."""
    plt = plt_agg()
    panels = ["throughput_rps", "p50_ms", "p95_ms", "p99_ms", "batch_size"]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.0 * len(panels)), sharex=True)
    b = e.twin
    n = len(e.util)
    mid = ((b.t_start + b.t_end) / 2)[:n]
    for ax, m in zip(axes, panels, strict=True):
        lo, hi = (x[:n] for x in b.seed_range(m))
        ax.fill_between(mid, lo, hi, color="tab:blue", alpha=0.2, step="mid", label="twin (seeds)")
        ax.step(mid, b.twin_mean(m)[:n], where="mid", color="tab:blue", label="twin (mean)")
        for i, (name, real) in enumerate(zip(e.recordings, e.reals, strict=True)):
            colour = RECORDING_COLOURS[i % len(RECORDING_COLOURS)]
            ax.step(mid, real[m], where="mid", lw=1, color=colour, label=name)
        ax.set_ylabel(m.replace("_", " "), fontsize=8)
    axes[0].legend(fontsize=7, loc="upper left", ncol=2)
    axes[0].set_title(f"{e.experiment}: every recording of the experiment and the twin")
    axes[-1].set_xlabel("seconds from the bundle's start")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def _window_figure(b: Any, path: Path) -> Path:
    plt = plt_agg()
    panels = ["throughput_rps", "p50_ms", "p95_ms", "p99_ms", "queue_wait_ms", "batch_size"]
    fig, axes = plt.subplots(len(panels) + 1, 1, figsize=(9, 2.0 * (len(panels) + 1)), sharex=True)
    mid = (b.t_start + b.t_end) / 2
    for ax, m in zip(axes, panels, strict=False):
        lo, hi = b.seed_range(m)
        ax.fill_between(
            mid, lo, hi, color="tab:blue", alpha=0.2, step="mid", label="twin (seed range)"
        )
        ax.step(mid, b.twin_mean(m), where="mid", color="tab:blue", label="twin (mean)")
        ax.step(mid, b.real[m], where="mid", color="k", label="real")
        ax.set_ylabel(m.replace("_", " "), fontsize=8)
    axes[0].legend(fontsize=7, loc="upper left")
    axes[0].set_title(f"{b.name}: real vs twin per window")
    axes[-1].step(mid, b.util * 100, where="mid", color="tab:red")
    for y in (50, 80):
        axes[-1].axhline(y, color="grey", lw=0.5, ls="--")
    axes[-1].set_ylabel("real util, %", fontsize=8)
    axes[-1].set_xlabel("seconds from the bundle's start")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
