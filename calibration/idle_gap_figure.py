"""The idle-gap fit drawn (`NAME.figures/idle-gap-<device>.png`): each chunk's counters over the
curve against its warmth, and the fitted k0 (1 + g W)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from calibration.device_fit import DeviceFit


def idle_gap_figure(
    d: DeviceFit, figdir: Path, plt: Any, save_figure: Callable[[Any, Path], Path]
) -> list[Path]:
    """One figure when the idle-gap fit ran on chunks, none otherwise; `plt` and `save_figure`
    are the report's (`calibration.report`), passed in so this module does not import it."""
    ig = d.idle_gap
    if ig is None or not len(ig.ratio):
        return []
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.scatter(ig.warmth, ig.ratio, s=10, alpha=0.6, color="tab:orange",
               label="counter chunks, batches of one")  # fmt: skip
    w = np.linspace(0, float(np.nanmax(ig.warmth)), 50)  # no extrapolation past the data
    state = "applied" if ig.applied else "not applied"
    ax.plot(
        w,
        ig.k_warm.value * (1 + ig.slowdown.value * w),
        color="tab:blue",
        label=f"k0 (1 + g W): k0 {ig.k_warm.value:.3f}, g {ig.slowdown.fmt()} ({state})",
    )
    ax.set(
        xlabel=f"warmth W = mean(1 - exp(-gap / {ig.tau_ms.value:g} ms)) of the chunk",
        ylabel="compute per request / curve(1)",
        title=f"{d.key}: execution after an idle gap",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, figdir / f"idle-gap-{d.key}.png")]
