"""The recording floor: how far one recording of an experiment is from another.

`kisim validate` compares the twin with one recording per experiment, but the host
itself (a VM's neighbours, caches, frequency, the load generator on the same cores)
makes a second recording of the same schedule differ too. `recording_floor` compares
every other recording of a validated bundle's experiment with it, window by window, with
validate's own error definitions (`window_ape`, `mape_table`): a twin whose MAPE is at
this floor predicts a recording as well as repeating the experiment does. Both sides of a
pair carry their noise, where the twin's mean over seeds carries none, so a perfect twin
would sit lower, near floor / sqrt(2); `against_mean` shows how close the twin comes once
most of one recording's noise is averaged out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from calibration.bundle import Bundle
from calibration.validate import (
    METRICS,
    BundleValidation,
    WindowFigures,
    mape_table,
    real_windows,
    window_ape,
)


@dataclass
class RecordingPair:
    reference: str  # the validated bundle (denominator)
    other: str  # another recording of the same experiment
    ape: dict[str, np.ndarray]
    util: np.ndarray  # the reference's utilisation per window


Recordings = dict[str, tuple[Bundle, WindowFigures]]  # by path: (bundle, its real windows)


def recordings(bundles: list[Bundle], repeats: list[Bundle], window_s: float) -> Recordings:
    """Every recording once (by path), with its real per-window figures, computed once."""
    every = {str(b.path.resolve()): b for b in [*bundles, *repeats]}
    return {p: (b, real_windows(b, window_s)) for p, b in every.items()}


def recording_pairs(
    bundles: list[Bundle],
    repeats: list[Bundle],
    window_s: float,
    min_requests: int,
    known: Recordings | None = None,
) -> list[RecordingPair]:
    """Each validated bundle against every other recording of its experiment (in `repeats`
    or among the validated bundles themselves), over the shorter of the two's windows."""
    known = known or recordings(bundles, repeats, window_s)
    pairs = []
    for ref in bundles:
        here = str(ref.path.resolve())
        _, real_r, util_r, n_r, _ = known[here][1]
        for path, (other, figs) in known.items():
            if path == here or other.experiment != ref.experiment:
                continue
            _, real_o, _, n_o, _ = figs
            n = min(len(n_r), len(n_o))
            ape = window_ape(
                {m: v[:n] for m, v in real_o.items()},
                {m: v[:n] for m, v in real_r.items()},
                n_o[:n],
                n_r[:n],
                min_requests,
            )
            pairs.append(RecordingPair(ref.path.name, other.path.name, ape, util_r[:n]))
    return pairs


def recording_floor(pairs: list[RecordingPair]) -> dict[str, Any]:
    """MAPE of recording against recording, overall and per band, with the pairs used."""
    return {**mape_table(pairs), "pairs": [[p.reference, p.other] for p in pairs]}


@dataclass
class MeanReference:
    experiment: str  # the validated bundle standing for its experiment
    recordings: list[str]
    ape: dict[str, np.ndarray]  # the twin's mean against the recordings' mean, per window
    util: np.ndarray  # the recordings' mean utilisation
    reals: list[dict[str, np.ndarray]]  # each recording's figures per window (for the figure)
    twin: BundleValidation


def against_mean(
    validated: list[BundleValidation],
    bundles: list[Bundle],
    repeats: list[Bundle],
    window_s: float,
    min_requests: int,
    known: Recordings | None = None,
) -> list[MeanReference]:
    """The twin against the mean of all recordings of each experiment, per window.

    One recording carries its own host drift and sampling noise; the mean of N carries
    about 1/sqrt(N) of them, so what remains is closer to the twin's own (systematic)
    error. Once per experiment with two or more recordings; windows up to the shortest.
    """
    known = known or recordings(bundles, repeats, window_s)
    out = []
    seen: set[str] = set()
    for bv, bun in zip(validated, bundles, strict=True):
        key = bun.experiment
        members = [(b, f) for b, f in known.values() if b.experiment == key]
        if key in seen or len(members) < 2:
            continue
        seen.add(key)
        group = [b for b, _ in members]
        figs = [f for _, f in members]
        n = min([len(bv.n_real), *(len(f[3]) for f in figs)])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a window no recording has
            ref = {m: np.nanmean([f[1][m][:n] for f in figs], axis=0) for m in METRICS}
        n_ref = np.min([f[3][:n] for f in figs], axis=0)
        ape = window_ape(
            {m: bv.twin_mean(m)[:n] for m in METRICS},
            ref,
            np.nanmean(bv.twin["throughput_rps"][:, :n], axis=0) * (bv.t_end - bv.t_start)[:n],
            n_ref,
            min_requests,
        )
        util = np.mean([f[2][:n] for f in figs], axis=0)
        reals = [{m: f[1][m][:n] for m in METRICS} for f in figs]
        out.append(MeanReference(bv.name, [b.path.name for b in group], ape, util, reals, bv))
    return out


def reproducibility(
    validated: list[BundleValidation],
    bundles: list[Bundle],
    repeats: list[Bundle],
    window_s: float,
    min_requests: int,
) -> tuple[dict[str, Any] | None, list[MeanReference]]:
    """(`recording_floor` (recording vs recording) and `against_mean_of_recordings` (the
    twin vs the mean of each experiment's recordings), the experiments for the figures);
    (None, []) without a second recording of any experiment."""
    known = recordings(bundles, repeats, window_s)
    pairs = recording_pairs(bundles, repeats, window_s, min_requests, known)
    if not pairs:
        return None, []
    means = against_mean(validated, bundles, repeats, window_s, min_requests, known)
    return {
        "recording_floor": recording_floor(pairs),
        "against_mean_of_recordings": {
            **mape_table(means),
            "experiments": {m.experiment: m.recordings for m in means},
        },
    }, means


def unmatched(bundles: list[Bundle], repeats: list[Bundle]) -> list[str]:
    """Repeats that are no recording of any validated bundle's experiment (for a warning)."""
    keys = {b.experiment for b in bundles}
    return [str(r.path) for r in repeats if r.experiment not in keys]
