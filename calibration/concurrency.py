"""`core_scaling` (CPUs) and `sharing_penalty` (GPUs) by simulation: indirect inference.

How much concurrent executions slow each other down shows in Triton's compute counter
only through *how often* they overlap, and that depends on the batcher (its delay keeps
instances from overlapping), the closed loop and the load: no closed form gets it right
(an independent-instances model misread a GPU's penalty of 1 as 0.04). So the twin,
which executes exactly the dispatch rule it will be used with, replays every bundle
whose pools run concurrent executions (several instances per replica, or other cores
than the reference) for a grid of values, with common random numbers; the value whose
request-weighted compute time per window (the statistic Triton reports, so no batch-size
spread correction is needed) matches the counters best is the estimate:

    SSR(theta) = sum_w (log c_real,w - log c_twin,w(theta) - log k)^2 / var_w

Each window weighs by the inverse of its variance: service noise over its batches, the
seed-to-seed spread of the twin's windows (one recording is one draw of the closed
loop's dynamics) and the isolated curve's own uncertainty at the window's batch size.
log k, the level of the curve under load, is fitted jointly, held near the in-load
factor of the replicas without concurrency by a penalty of its standard error (free
when there are none), so the level's uncertainty widens theta's. The 95 % interval is
the profile-likelihood set SSR(theta) <= SSR_min + 3.84 max(1, s^2), with
s^2 = SSR_min / (windows - 1).

The same replays fit `batch_merge_ms` (the extra time per request the dynamic batcher
merges into a batch; isolated batches are one request) on the batched pools without
other concurrency (one instance at the reference cores): its grid, the windows' batch
sizes as the twin's batcher forms them, and log k jointly as above, so the level of the
batched pools at batch ~1 is not read as a merge cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from calibration.bundle import Bundle
from calibration.fit import Estimate
from calibration.replay import scenario_for
from kisim.core.config import Calibration, DeviceCalibration

GRID: dict[str, tuple[float, ...]] = {
    "core_scaling": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.3),
    "sharing_penalty": (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
    "host_sharing_penalty": (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
    "batch_merge_ms": (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
}
WINDOW_S = 10.0
MIN_EXEC = 20  # batches per window for the window to count
COUNTERS = (
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_compute_infer_duration_us",
)


@dataclass
class ConcurrencyFit:
    attr: str  # the DeviceCalibration field fitted
    theta: Estimate
    k: Estimate  # the curve's level under load relative to `device`, fitted jointly
    grid: np.ndarray
    ssr: np.ndarray
    t_mid: np.ndarray  # windows used (s from each bundle's start), for the figure
    real_ms: np.ndarray  # request-weighted compute per window, real
    twin_ms: np.ndarray  # the same in the twin at the estimate's nearest grid point
    notes: list[str] = field(default_factory=list)


def has_concurrency(bun: Bundle, pool: str, ref_cores: float, attr: str = "") -> bool:
    """Whether the pool's executions overlap in a way `attr` acts on."""
    cfg = bun.manifest.pools[pool]
    if attr == "batch_merge_ms":  # batcher-merged requests, nothing else concurrent
        return (
            cfg.batching.enabled
            and cfg.instances == 1
            and (cfg.device != "cpu" or abs(cfg.compute_cores - ref_cores) <= 1e-9)
        )
    if attr == "host_sharing_penalty":  # several replicas on one host (the local bridge)
        return cfg.device == "cpu" and bun.manifest.backend == "local" and cfg.replicas > 1
    return cfg.instances > 1 or (cfg.device == "cpu" and abs(cfg.compute_cores - ref_cores) > 1e-9)


def concurrency_attr(kind: str, core_scaling_known: bool) -> str:
    """The parameter the replays fit: GPU time-slicing; for CPUs the core scaling, or, when
    the isolated measurements already gave it, replicas sharing a host's cores."""
    if kind == "gpu":
        return "sharing_penalty"
    return "host_sharing_penalty" if core_scaling_known else "core_scaling"


def _real(bun: Bundle, pool: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window of the pool: (compute us, items, executions), summed over replicas."""
    n_w = int(math.ceil(bun.manifest.duration_s / WINDOW_S - 1e-9))
    ct = bun.counters[pool]
    out = np.zeros((3, n_w))
    t0 = bun.manifest.start_unix_s
    for w in range(n_w):
        s = ct.window_sums(t0 + w * WINDOW_S, t0 + (w + 1) * WINDOW_S, COUNTERS)
        out[:, w] = (s[COUNTERS[2]], s[COUNTERS[0]], s[COUNTERS[1]])
    return out[0], out[1], out[2]


def _twin(bun: Bundle, pool: str, cal: Calibration, dmap: dict[str, str], seed: int) -> np.ndarray:
    """Per window of the pool in the twin: (compute s, items)."""
    from twin.backend import TwinBackend

    sc = scenario_for(bun, cal, WINDOW_S, dmap)
    be = TwinBackend()
    be.reset(sc, seed)
    n_w = int(math.ceil(sc.duration_s / WINDOW_S - 1e-9))
    out = np.zeros((2, n_w))
    last = np.zeros(2)
    for w in range(n_w):
        be.advance(min(WINDOW_S, sc.duration_s - w * WINDOW_S))
        cur = np.array(
            [
                sum(r.compute_s_sum for r in be.dp.replicas if r.pool == pool),
                sum(r.n_items for r in be.dp.replicas if r.pool == pool),
            ]
        )
        out[:, w] = cur - last
        last = cur
    return out


def fit_concurrency(
    key: str,
    kind: str,
    group: list[tuple[Bundle, str]],
    device: DeviceCalibration,
    ref_cores: float,
    others: dict[str, DeviceCalibration],
    offset: tuple[float, float] | None,
    curve_rel_se: Callable[[np.ndarray], np.ndarray] | None = None,
    seeds: int = 3,
    attr: str | None = None,
) -> ConcurrencyFit | None:
    """Fit theta on the pools of `group` with concurrency; None if there are none.

    `device` is the device as fitted so far; `offset` = (log k, its standard error): what
    the replicas without concurrency say about the level of `device`'s curve under load
    (None: nothing, the level is fitted here too); `curve_rel_se(b)`, the relative
    standard error of the curve at batch size b, adds to each window's variance (a
    curve's shape error would otherwise be read as concurrency). `others` holds a device
    per other kind, for bundles that also ran pools of another kind.
    """
    attr = attr or concurrency_attr(kind, False)
    pools = [(b, p) for b, p in group if has_concurrency(b, p, ref_cores, attr)]
    if not pools:
        return None
    grid = np.asarray(GRID[attr])
    reals = [_real(b, p) for b, p in pools]
    keep = [ex >= MIN_EXEC for _, _, ex in reals]
    y_real = np.concatenate(
        [np.log(c[m] / n[m] / 1e3) for (c, n, _), m in zip(reals, keep, strict=True)]
    )  # ms per request
    execs = np.concatenate([ex[m] for (_, _, ex), m in zip(reals, keep, strict=True)])
    bbar = np.concatenate([n[m] / ex[m] for (_, n, ex), m in zip(reals, keep, strict=True)])
    t_mid = np.concatenate([(np.flatnonzero(m) + 0.5) * WINDOW_S for m in keep])
    if len(execs) < 3:
        return None
    n_kept = len(execs)  # windows per replay, before the finite filter below
    dmaps = [
        {p: key if c.device == kind else f"other-{c.device}" for p, c in b.manifest.pools.items()}
        for b, _ in pools
    ]
    others_cal = {f"other-{k}": d for k, d in others.items() if k != kind}

    def replay(theta: float) -> np.ndarray:
        """log ms per request per kept window, one row per seed (common random numbers)."""
        dev = device.model_copy(update={attr: float(theta)})
        cal = Calibration(
            name="concurrency-fit", provenance="fit", devices={key: dev, **others_cal}
        )
        out = np.zeros((seeds, n_kept))
        for s in range(seeds):
            parts = []
            for (bun, pool), m, dmap in zip(pools, keep, dmaps, strict=True):
                acc = _twin(bun, pool, cal, dmap, s)
                with np.errstate(all="ignore"):
                    parts.append(np.log(acc[0][m] * 1e3 / acc[1][m]))
            out[s] = np.concatenate(parts)
        return out

    runs = {float(t): replay(t) for t in grid}
    ok = np.all([np.all(np.isfinite(y), axis=0) for y in runs.values()], axis=0)
    y_real, execs, t_mid, bbar = y_real[ok], execs[ok], t_mid[ok], bbar[ok]
    runs = {t: y[:, ok] for t, y in runs.items()}
    # a window's variance: the real run is one draw of the closed loop's dynamics (the
    # seed-to-seed spread of the twin's windows, pooled), the twin's mean has it / seeds
    spread = float(np.mean([np.var(y, axis=0, ddof=1) for y in runs.values()])) if seeds > 1 else 0
    cv = device.service.noise.cv if device.service.noise.kind == "lognormal" else 1.0
    var = cv * cv / execs + spread * (1 + 1 / seeds) + 1e-8
    if curve_rel_se is not None:
        var = var + curve_rel_se(bbar) ** 2
    w = 1 / var
    c0, prec = (0.0, 0.0) if offset is None else (offset[0], 1 / max(offset[1], 1e-6) ** 2)

    def profile(y: np.ndarray) -> tuple[float, float]:
        """(SSR with log k at its best, that log k) for one theta's replays."""
        d = y_real - y.mean(axis=0)
        off = (float(np.sum(w * d)) + c0 * prec) / (float(w.sum()) + prec)
        return float(np.sum(w * (d - off) ** 2) + prec * (off - c0) ** 2), off

    # refine around the best point twice (midpoints to its neighbours): the profile is far
    # from a parabola over the coarse grid
    for _ in range(2):
        ts = sorted(runs)
        j = int(np.argmin([profile(runs[t])[0] for t in ts]))
        for nb in (j - 1, j + 1):
            if 0 <= nb < len(ts):
                mid = round((ts[j] + ts[nb]) / 2, 6)
                if mid not in runs:
                    y = replay(mid)[:, ok]
                    runs[mid] = np.where(np.isfinite(y), y, runs[ts[j]])
    ts = np.array(sorted(runs))
    prof = np.array([profile(runs[t]) for t in ts])
    ssr, off = prof[:, 0], prof[:, 1]
    fine = np.linspace(ts[0], ts[-1], 1201)
    ssr_f = _smooth(ts, ssr, fine)
    j = int(np.argmin(ssr_f))
    s2 = max(float(ssr_f[j]) / max(len(w) - 1, 1), 1.0)  # over-dispersion widens, never narrows
    inside = ssr_f <= ssr_f[j] + 3.84 * s2
    notes = []
    if j in (0, len(fine) - 1):
        notes.append(f"{attr} at the edge of the searched range ({grid[0]:g}..{grid[-1]:g})")
    theta = Estimate(
        float(fine[j]),
        float(fine[inside].min()),
        float(fine[inside].max()),
        len(w),
        "twin replays on a grid, profile least squares on per-window compute",
    )
    off_f = np.interp(fine, ts, off)
    k_est = Estimate(
        float(math.exp(off_f[j])),
        float(np.exp(off_f[inside]).min()),
        float(np.exp(off_f[inside]).max()),
        len(w),
        "level of the curve, joint with the concurrency fit",
    )
    near = float(ts[int(np.argmin(np.abs(ts - fine[j])))])
    g_off = float(np.interp(near, ts, off))
    return ConcurrencyFit(
        attr,
        theta,
        k_est,
        ts,
        ssr,
        t_mid,
        np.exp(y_real),
        np.exp(runs[near].mean(axis=0) + g_off),
        notes,
    )


def _smooth(grid: np.ndarray, ssr: np.ndarray, fine: np.ndarray) -> np.ndarray:
    """The profile between grid points: the parabola through the three points around the
    minimum (where convex), linear interpolation elsewhere."""
    out = np.interp(fine, grid, ssr)
    j = min(max(int(np.argmin(ssr)), 1), len(grid) - 2)
    lo, hi = j - 1, j + 2
    if hi - lo >= 3:
        c = np.polyfit(grid[lo:hi], ssr[lo:hi], 2)
        if c[0] > 0:
            sel = (fine >= grid[lo]) & (fine <= grid[hi - 1])
            out[sel] = np.polyval(c, fine[sel])
    return out
