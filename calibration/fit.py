"""Estimators: each turns bundle data into one group of calibration parameters, with a 95 % CI.

Every estimator returns `Estimate`s (value, 95 % interval, how many observations, how it
was obtained) and notes what it could not identify; `calibration.calibrate` assembles
them into a `Calibration`. Uncertainty is by bootstrap (percentile intervals): over
repeats within a batch size for isolated measurements, over blocks of consecutive
counter intervals for everything read from Prometheus, over replicas for start-ups.

Service time model (what the twin executes, `twin.kernel._dispatch`):
    t(b) = curve(b) x k x f(concurrency) x noise,  noise ~ lognormal(mean 1, cv)
with f = E[(ref_cores x m / cores)^e] on CPUs (m = busy instances of the replica,
e = `core_scaling`) and 1 + sharing_penalty x (m - 1) on GPUs; k is the in-load factor
by which the counters' compute time differs from the isolated measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calibration.bundle import Bundle
from calibration.prometheus import CounterTable

MIN_EXEC_PER_CHUNK = 20  # batches per counter chunk (the noise of its mean ~ cv / sqrt(20))
MAX_CHUNK_S = 30.0
BLOCK = 8  # consecutive chunks per bootstrap block (counter chunks are autocorrelated)
K_MIN_EFFECT = 0.02  # an in-load factor is applied only if significant and at least 2 %


@dataclass
class Estimate:
    value: float
    lo: float
    hi: float
    n: int = 0
    method: str = ""

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi

    def fmt(self, unit: str = "", digits: int = 4) -> str:
        def g(x: float) -> str:  # round-off (1e-13) prints as 0
            return f"{0.0 if abs(x) < 1e-9 else x:.{digits}g}"

        if math.isfinite(self.lo):
            return f"{g(self.value)}{unit} [{g(self.lo)}, {g(self.hi)}]"
        return f"{g(self.value)}{unit}"


def fixed(value: float, method: str) -> Estimate:
    return Estimate(value, math.nan, math.nan, 0, method)


def _ci(boot: np.ndarray, value: float, n: int, method: str) -> Estimate:
    boot = boot[np.isfinite(boot)]
    if len(boot) < 10:
        return Estimate(value, math.nan, math.nan, n, method)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return Estimate(value, float(min(lo, value)), float(max(hi, value)), n, method)


def _blocks(n: int, rng: np.random.Generator, block: int = BLOCK) -> np.ndarray:
    """Indices of a moving-block bootstrap resample of 0..n-1."""
    if n <= block:
        return rng.integers(0, n, n)
    starts = rng.integers(0, n - block + 1, int(math.ceil(n / block)))
    return (starts[:, None] + np.arange(block)[None, :]).ravel()[:n]


# --------------------------------------------------------------------------- isolated curve


@dataclass
class CurveFit:
    """Service time vs batch size from isolated measurements (or from counters)."""

    source: str  # "isolated" | "counters"
    sizes: np.ndarray
    means: np.ndarray  # mean execution time per size, ms
    mean_lo: np.ndarray
    mean_hi: np.ndarray
    counts: np.ndarray
    base: Estimate  # affine fit: t(b) = base + per_item (b - 1)
    per_item: Estimate
    lack_of_fit_p: float
    form: str  # "affine" | "table"
    cv: Estimate
    family: str
    loglik: dict[str, float]
    points_b: np.ndarray  # every measurement, for figures
    points_ms: np.ndarray
    dropped: int = 0
    notes: list[str] = field(default_factory=list)
    boot: list[tuple[np.ndarray, float, float]] = field(default_factory=list, repr=False)

    def resampled(self, i: int) -> CurveFit:
        """The i-th bootstrap replicate of this curve (itself when there are none)."""
        if not self.boot:
            return self
        means, base, per = self.boot[i % len(self.boot)]
        return CurveFit(
            self.source,
            self.sizes,
            means,
            self.mean_lo,
            self.mean_hi,
            self.counts,
            fixed(base, ""),
            fixed(per, ""),
            self.lack_of_fit_p,
            self.form,
            self.cv,
            self.family,
            self.loglik,
            self.points_b,
            self.points_ms,
        )

    def time_ms(self, b: np.ndarray | float) -> np.ndarray:
        """The curve the calibration will hold (table or affine), before the in-load factor."""
        b = np.asarray(b, dtype=float)
        if self.form == "table" and len(self.sizes) >= 2:
            s, m = self.sizes.astype(float), self.means
            inside = np.interp(b, s, m)
            lo = m[0] + (m[1] - m[0]) * (b - s[0]) / (s[1] - s[0])
            hi = m[-2] + (m[-1] - m[-2]) * (b - s[-2]) / (s[-1] - s[-2])
            return np.maximum(np.where(b < s[0], lo, np.where(b > s[-1], hi, inside)), 1e-6)
        return self.base.value + self.per_item.value * (b - 1)

    def slope(self, b: np.ndarray) -> np.ndarray:
        """Local slope d t / d b (for the batch-size spread correction)."""
        return (self.time_ms(np.asarray(b) + 0.5) - self.time_ms(np.asarray(b) - 0.5)).clip(min=0)


def _affine_wls(b: np.ndarray, m: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Weighted least squares of m on (1, b - 1): (base, per_item, chi2)."""
    x = np.column_stack([np.ones_like(b, dtype=float), b - 1.0])
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(x * sw[:, None], m * sw, rcond=None)
    if len(b) == 1:
        coef = np.array([m[0], 0.0])
    chi2 = float(np.sum(w * (m - x @ coef) ** 2))
    return float(coef[0]), float(coef[1]), chi2


def _lognormal_stats(
    b: np.ndarray, logs: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, float]:
    """Per-size mean of log times and the pooled sigma (ML within sizes)."""
    idx = np.searchsorted(sizes, b)
    mu = np.bincount(idx, weights=logs, minlength=len(sizes)) / np.bincount(
        idx, minlength=len(sizes)
    )
    dof = max(len(logs) - len(sizes), 1)
    sigma = math.sqrt(float(np.sum((logs - mu[idx]) ** 2)) / dof)
    return mu, sigma


def fit_isolated(b: np.ndarray, ms: np.ndarray, rng: np.random.Generator, n_boot: int) -> CurveFit:
    """Per-size means, an affine fit with a lack-of-fit test, and the noise cv and family.

    Execution times are modelled as lognormal around each size's mean, with one sigma
    for all sizes (the twin's noise is one `Dist` per device). Outliers further than
    6 robust sigmas (median / MAD) from their size's median are dropped and counted.
    """
    b = np.asarray(b, dtype=int)
    logs = np.log(np.asarray(ms, dtype=float))
    sizes = np.unique(b)
    idx = np.searchsorted(sizes, b)
    med = np.array([np.median(logs[idx == i]) for i in range(len(sizes))])
    res = logs - med[idx]
    rob = 1.4826 * float(np.median(np.abs(res))) or 1e-12
    keep = np.abs(res) <= 6 * rob
    dropped = int(np.count_nonzero(~keep))
    b, logs, ms = b[keep], logs[keep], np.asarray(ms, dtype=float)[keep]
    sizes = np.unique(b)
    counts = np.bincount(np.searchsorted(sizes, b), minlength=len(sizes))

    def estimate(bb: np.ndarray, ll: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
        mu, sigma = _lognormal_stats(bb, ll, sizes)
        means = np.exp(mu + sigma * sigma / 2)
        cv = math.sqrt(math.expm1(sigma * sigma))
        w = counts / np.maximum(means * max(cv, 1e-3), 1e-12) ** 2
        base, per, _ = _affine_wls(sizes.astype(float), means, w)
        return means, sigma, cv, base, per

    means, sigma, cv, base, per = estimate(b, logs)
    boots = []
    groups = [np.flatnonzero(b == s) for s in sizes]
    for _ in range(n_boot):
        pick = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        boots.append(estimate(b[pick], logs[pick]))
    bm = np.array([x[0] for x in boots])
    mean_lo, mean_hi = np.percentile(bm, [2.5, 97.5], axis=0) if boots else (means, means)
    n = len(ms)
    cv_e = _ci(np.array([x[2] for x in boots]), cv, n, "lognormal ML, pooled over sizes")
    base_e = _ci(np.array([x[3] for x in boots]), base, n, "WLS on per-size means")
    per_e = _ci(np.array([x[4] for x in boots]), per, n, "WLS on per-size means")
    w = counts / np.maximum(means * max(cv, 1e-3), 1e-12) ** 2
    _, _, chi2 = _affine_wls(sizes.astype(float), means, w)
    dof = len(sizes) - 2
    p = chi2_sf(chi2, dof) if dof > 0 else 1.0
    rel = np.abs(means - (base + per * (sizes - 1))) / means
    form = "table" if (p < 1e-3 and float(rel.max()) > 0.02) else "affine"
    family, loglik = _noise_family(ms / means[np.searchsorted(sizes, b)], sigma)
    notes = []
    if dropped:
        notes.append(f"{dropped} isolated measurement(s) dropped as outliers (> 6 robust sigmas)")
    if len(sizes) == 1:
        notes.append("only batch size 1 was measured: per_item_ms is not identified")
    return CurveFit(
        "isolated",
        sizes,
        means,
        np.asarray(mean_lo),
        np.asarray(mean_hi),
        counts,
        base_e,
        per_e,
        p,
        form,
        cv_e,
        family,
        loglik,
        b,
        ms,
        dropped,
        notes,
        [(x[0], x[3], x[4]) for x in boots],
    )


def chi2_sf(x: float, dof: int) -> float:
    """Upper tail of chi-square (Wilson-Hilferty normal approximation; ample for a 1e-3 test)."""
    if x <= 0:
        return 1.0
    v = 2.0 / (9.0 * dof)
    z = ((x / dof) ** (1 / 3) - (1 - v)) / math.sqrt(v)
    return 0.5 * math.erfc(z / math.sqrt(2))


def _noise_family(y: np.ndarray, sigma: float) -> tuple[str, dict[str, float]]:
    """Mean-one multipliers `y`: log-likelihood of each `Dist` family; the AIC winner."""
    y = y[y > 0]
    if sigma < 1e-6:
        return "deterministic", {"deterministic": math.inf}
    mu = -sigma * sigma / 2
    ln = float(
        np.sum(-np.log(y * sigma * math.sqrt(2 * math.pi)) - (np.log(y) - mu) ** 2 / (2 * sigma**2))
    )
    ex = float(np.sum(-y))
    ll = {"lognormal": ln, "exponential": ex}
    aic = {"lognormal": 2 - 2 * ln, "exponential": -2 * ex}  # exponential: cv fixed at 1
    return min(aic, key=aic.__getitem__), ll


# --------------------------------------------------------------------------- counters


@dataclass
class Chunks:
    """Consecutive counter increments of one replica, grouped to >= MIN_EXEC batches."""

    bundle: np.ndarray  # str
    t_end: np.ndarray  # unix
    dt: np.ndarray
    items: np.ndarray
    execs: np.ndarray
    compute_ms: np.ndarray  # request-weighted compute time (Triton's compute_infer), ms
    queue_ms: np.ndarray
    instances: np.ndarray
    cores: np.ndarray
    bmax: np.ndarray

    @property
    def bbar(self) -> np.ndarray:
        return self.items / self.execs

    @property
    def per_request_ms(self) -> np.ndarray:
        return self.compute_ms / self.items

    @property
    def busy(self) -> np.ndarray:
        """Mean busy instances / instances (batch busy time = compute x execs / items)."""
        return (self.per_request_ms * self.execs * 1e-3 / self.dt / self.instances).clip(0, 1)

    def __len__(self) -> int:
        return len(self.items)

    def select(self, mask: np.ndarray) -> Chunks:
        return Chunks(**{k: getattr(self, k)[mask] for k in self.__dataclass_fields__})


def chunk_counters(bundles: list[tuple[Bundle, str]]) -> Chunks:
    """Chunks of every (bundle, pool) given, per replica series."""
    cols: dict[str, list[float | str]] = {k: [] for k in Chunks.__dataclass_fields__}
    for bun, pool in bundles:
        ct: CounterTable = bun.counters[pool]
        cfg = bun.manifest.pools[pool]
        a, z = bun.manifest.start_unix_s, bun.manifest.end_unix_s
        for r in range(len(ct.replicas)):
            t, dt = ct.t[r], ct.dt[r]
            n, e = ct.inc["nv_inference_count"][r], ct.inc["nv_inference_exec_count"][r]
            c = ct.inc["nv_inference_compute_infer_duration_us"][r]
            q = ct.inc["nv_inference_queue_duration_us"][r]
            acc = np.zeros(5)
            for k in range(len(t)):
                if t[k] - dt[k] < a - 1e-6 or t[k] > z + 1e-6:
                    continue
                acc += (dt[k], n[k], e[k], c[k], q[k])
                if acc[2] >= MIN_EXEC_PER_CHUNK or (acc[0] >= MAX_CHUNK_S and acc[2] >= 5):
                    if acc[1] > 0:
                        for key, v in (
                            ("bundle", bun.name),
                            ("t_end", t[k]),
                            ("dt", acc[0]),
                            ("items", acc[1]),
                            ("execs", acc[2]),
                            ("compute_ms", acc[3] / 1e3),
                            ("queue_ms", acc[4] / 1e3),
                            ("instances", cfg.instances),
                            ("cores", cfg.resources.cpu),
                            ("bmax", cfg.batching.max_batch_size if cfg.batching.enabled else 1),
                        ):
                            cols[key].append(v)
                    acc[:] = 0
    return Chunks(
        **{k: np.asarray(v, dtype=object if k == "bundle" else float) for k, v in cols.items()}
    )


def batch_variance(bbar: np.ndarray, bmax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(central guess, upper bound) of the variance of batch sizes given their mean.

    The bound is Bhatia-Davis, (bbar - 1)(bmax - bbar); the guess treats b - 1 as
    binomial on 0..bmax-1, i.e. the bound / (bmax - 1).
    """
    vmax = ((bbar - 1) * (bmax - bbar)).clip(min=0)
    return vmax / np.maximum(bmax - 1, 1), vmax


def spread_bounds(ch: Chunks, curve: CurveFit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower bound, central guess, upper bound) of Triton's request-weighted mean compute time
    of a chunk given only its mean batch size.

    compute / items = sum_b b t(b) / sum_b b = t(bbar) + t' Var(b) / bbar for a locally
    affine t, with Var(b) from `batch_variance`: the counters pin the curve down only
    where batch sizes cannot spread (batches of one, or all at the maximum).
    """
    bb = ch.bbar
    lo = curve.time_ms(bb)
    vc, vmax = batch_variance(bb, ch.bmax)
    slope = curve.slope(bb) / bb
    return lo, lo + slope * vc, lo + slope * vmax


@dataclass
class InLoad:
    """The counters' compute time relative to the isolated curve."""

    k: Estimate  # in-load factor (1 = the counters agree with the isolated curve)
    k_applied: float
    ratio: np.ndarray  # per chunk: observed / predicted (central spread guess)
    weight: np.ndarray
    usable: int  # chunks with a narrow batch-size spread
    notes: list[str] = field(default_factory=list)


def busy_pmf(n: int, p: np.ndarray) -> np.ndarray:
    """P(m = 1..n) for the busy instances m a batch finds when it starts (itself included).

    Instances busy independently with probability p: an arrival finding j < n busy starts
    at once with m = j + 1; one finding all n busy waits and starts when one finishes,
    with the other n - 1 still busy. So m - 1 = min(J, n - 1), J ~ Binomial(n, p).
    """
    j = np.arange(n + 1)
    pp = np.asarray(p, dtype=float)[:, None]
    comb = np.array([math.comb(n, int(k)) for k in j], dtype=float)[None, :]
    pmf = comb * pp ** j[None, :] * (1 - pp) ** (n - j)[None, :]
    out = pmf[:, :n].copy()
    out[:, n - 1] += pmf[:, n]
    return out


def fit_in_load(
    ch: Chunks, curve: CurveFit, cv: float, rng: np.random.Generator, n_boot: int
) -> InLoad:
    """Reconcile the counters with the isolated curve: k = weighted mean of log(c / t).

    Pass only chunks without concurrency (one instance per replica at the reference
    cores): `calibration.concurrency` handles the rest by simulation. Each chunk's weight
    is the inverse of its variance: service noise averaged over its batches (cv^2 / execs)
    plus the batch-size spread (uniform within `spread_bounds`). Only chunks whose spread
    is narrow (< 2 %) are used when there are at least ten: the spread's central guess is
    a model, the bounds are facts. The bootstrap resamples chunks and the isolated curve
    together, so k's interval includes the curve's own uncertainty.
    """
    notes: list[str] = []
    if not len(ch):
        return InLoad(
            fixed(1.0, "no counter chunks without concurrency"),
            1.0,
            np.empty(0),
            np.empty(0),
            0,
            ["no counter chunk of a replica without concurrency: k not fitted on its own"],
        )

    def prepare(cf: CurveFit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, mid, hi = spread_bounds(ch, cf)
        width = (hi - lo) / mid
        var = cv * cv / ch.execs + width**2 / 12 + 1e-6
        return np.log(ch.per_request_ms / mid), 1 / var, width

    y, w, width = prepare(curve)
    narrow = width < 0.02
    usable = int(np.count_nonzero(narrow))
    if usable < 10:
        notes.append(
            f"only {usable} counter chunk(s) with a narrow batch-size spread: the in-load "
            "factor also rests on the spread's central guess (wider interval)"
        )
    else:
        w = np.where(narrow, w, 0.0)

    def solve(idx: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
        tw = float(w[idx].sum())
        return float(np.sum(w[idx] * y[idx])) / tw if tw > 0 else math.nan

    def redo(i: int) -> tuple[np.ndarray, np.ndarray]:
        yb, wb, _ = prepare(curve.resampled(i))
        return yb, (np.where(narrow, wb, 0.0) if usable >= 10 else wb)

    logk = solve(np.arange(len(ch)), y, w)
    boots = np.array([solve(_blocks(len(ch), rng), *redo(i)) for i in range(n_boot)])
    k = _ci(np.exp(boots), math.exp(logk), len(ch), "weighted log-ratio, counters vs isolated")
    k_applied = 1.0
    if math.isfinite(k.lo) and not k.contains(1.0) and abs(k.value - 1) >= K_MIN_EFFECT:
        k_applied = k.value
        notes.append(
            f"the counters show compute {k.value - 1:+.1%} vs the isolated curve "
            f"(95% CI {k.lo:.3f}..{k.hi:.3f}): the curve is scaled by {k.value:.3f}"
        )
    return InLoad(k, k_applied, np.exp(y), w, usable, notes)


def fit_curve_from_counters(
    ch: Chunks, prior_per_item: float, rng: np.random.Generator, n_boot: int
) -> CurveFit:
    """Affine curve from counters alone (no isolated measurements): WLS on chunk means less
    the spread's central guess, weighted down where the spread could be wide (the chunks
    that pin the curve are batches of one and batches at the maximum), iterated on the slope."""
    bb, c = ch.bbar, ch.per_request_ms

    def solve(idx: np.ndarray) -> tuple[float, float]:
        s = prior_per_item
        base = float(np.median(c[idx]))
        for _ in range(5):
            vmid, vmax = batch_variance(bb[idx], ch.bmax[idx])
            ww = ch.execs[idx] / (1 + (s * vmax / bb[idx] / np.maximum(c[idx], 1e-9) / 0.02) ** 2)
            yy = c[idx] - s * vmid / bb[idx]
            if float(np.ptp(bb[idx])) < 0.5:
                base = float(np.sum(ww * (yy - s * (bb[idx] - 1))) / np.sum(ww))
                break
            base, s, _ = _affine_wls(bb[idx], yy, ww)
            s = max(s, 0.0)
        return base, s

    base, per = solve(np.arange(len(ch)))
    boots = np.array([solve(_blocks(len(ch), rng)) for _ in range(n_boot)])
    fit = CurveFit(
        "counters",
        np.array([1]),
        np.array([base]),
        np.array([math.nan]),
        np.array([math.nan]),
        np.array([0]),
        _ci(boots[:, 0], base, len(ch), "WLS on counter chunks"),
        _ci(boots[:, 1], per, len(ch), "WLS on counter chunks"),
        1.0,
        "affine",
        fixed(math.nan, "not identifiable from counters"),
        "lognormal",
        {},
        bb,
        c,
    )
    if float(np.ptp(bb)) < 0.5:
        fit.notes.append(
            f"batch sizes barely vary in the counters: per_item_ms kept at "
            f"{prior_per_item:g} (prior)"
        )
    fit.notes.append(
        "no service_times.csv: the curve comes from Triton's counters alone; "
        "the noise cv is not identifiable from means"
    )
    return fit


# --------------------------------------------------------------------------- overhead


@dataclass
class Overhead:
    total: Estimate  # client latency - queue - compute, ms (the twin's overhead_ms)
    server: Estimate | None  # request - queue - compute (inside Triton), ms
    client: Estimate | None  # client latency - server request duration, ms
    noise_cv: Estimate | None
    load_slope: Estimate | None  # ms per req/s of the pool's throughput
    per_interval: np.ndarray  # (throughput, overhead ms, weight) rows, for figures
    notes: list[str] = field(default_factory=list)


@dataclass
class _Intervals:
    dt: np.ndarray
    n_client: np.ndarray
    lat_sum: np.ndarray
    items: np.ndarray
    execs: np.ndarray
    queue_us: np.ndarray
    compute_us: np.ndarray
    request_us: np.ndarray
    success: np.ndarray
    delay_us: np.ndarray  # the pool's max_queue_delay (a lone request waits it out)
    groups: list[np.ndarray]  # per interval: client latencies (ms)


def pool_intervals(bun: Bundle, pool: str) -> _Intervals:
    """Counter increments summed over the pool's replicas on the export's sample grid, with
    the successful client requests whose completion falls in each interval."""
    ct = bun.counters[pool]
    ends = np.unique(np.concatenate(ct.t))
    a, z = bun.manifest.start_unix_s, bun.manifest.end_unix_s
    names = (
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_request_duration_us",
        "nv_inference_request_success",
    )
    sums = {m: np.zeros(len(ends)) for m in names}
    dts = np.zeros(len(ends))
    for r, t in enumerate(ct.t):
        pos = np.searchsorted(ends, t)
        np.maximum.at(dts, pos, ct.dt[r])
        for m in names:
            if m in ct.inc:
                np.add.at(sums[m], pos, ct.inc[m][r])
    inside = (ends - dts >= a - 1e-6) & (ends <= z + 1e-6)
    req = bun.requests
    sel = req.ok & (req.pool == pool)
    done = req.done[sel]
    lat = req.latency_ms[sel]
    starts = ends - dts
    which = np.searchsorted(ends, done, side="left")  # interval (ends[k-1], ends[k]]
    valid = which < len(ends)
    valid[valid] &= done[valid] > starts[which[valid]]
    groups = [np.empty(0)] * len(ends)
    order = np.argsort(which[valid], kind="stable")
    w_sorted, l_sorted = which[valid][order], lat[valid][order]
    cuts = np.searchsorted(w_sorted, np.arange(len(ends) + 1))
    groups = [l_sorted[cuts[k] : cuts[k + 1]] for k in range(len(ends))]
    keep = np.flatnonzero(inside)
    bcfg = bun.manifest.pools[pool].batching
    delay = bcfg.max_queue_delay_us if bcfg.enabled and bcfg.max_batch_size > 1 else 0
    success = (
        sums["nv_inference_request_success"]
        if "nv_inference_request_success" in ct.inc
        else sums["nv_inference_count"]
    )
    return _Intervals(
        dts[keep],
        np.array([len(groups[k]) for k in keep], dtype=float),
        np.array([groups[k].sum() for k in keep]),
        sums["nv_inference_count"][keep],
        sums["nv_inference_exec_count"][keep],
        sums["nv_inference_queue_duration_us"][keep],
        sums["nv_inference_compute_infer_duration_us"][keep],
        sums["nv_inference_request_duration_us"][keep],
        success[keep],
        np.full(len(keep), float(delay)),
        [groups[k] for k in keep],
    )


def _concat(parts: list[_Intervals]) -> _Intervals:
    return _Intervals(
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in (
                "dt",
                "n_client",
                "lat_sum",
                "items",
                "execs",
                "queue_us",
                "compute_us",
                "request_us",
                "success",
                "delay_us",
            )
        ),
        [g for p in parts for g in p.groups],
    )


def fit_overhead(
    parts: list[_Intervals],
    has_request: bool,
    service_cv: float,
    prior_cv: float,
    rng: np.random.Generator,
    n_boot: int,
) -> Overhead:
    """Mean time outside queue and compute, its split, its noise and its load dependence.

    Ratio estimators over all intervals (sum of client latencies / requests minus sum of
    queue + compute / items), so sparse intervals weigh by their requests; bootstrap over
    blocks of intervals. The noise cv uses only quiet intervals (mean batch <= 1.05,
    queue wait <= the batcher's delay + 2 % of compute: a lone request waits the delay
    out, a constant), where a request's latency is compute + a constant + overhead:
    Var(latency) - (compute x service cv)^2 = (overhead x cv)^2.
    """
    iv = _concat(parts)
    use = (iv.n_client > 0) & (iv.items > 0)
    notes: list[str] = []
    idx_all = np.flatnonzero(use)

    def total(idx: np.ndarray) -> float:
        return float(
            iv.lat_sum[idx].sum() / iv.n_client[idx].sum()
            - (iv.queue_us[idx].sum() + iv.compute_us[idx].sum()) / iv.items[idx].sum() / 1e3
        )

    def server(idx: np.ndarray) -> float:
        return float(
            (iv.request_us[idx].sum() - iv.queue_us[idx].sum() - iv.compute_us[idx].sum())
            / iv.success[idx].sum()
            / 1e3
        )

    def client(idx: np.ndarray) -> float:
        return float(
            iv.lat_sum[idx].sum() / iv.n_client[idx].sum()
            - iv.request_us[idx].sum() / iv.success[idx].sum() / 1e3
        )

    boots = [idx_all[_blocks(len(idx_all), rng)] for _ in range(n_boot)]
    tot = _ci(
        np.array([total(i) for i in boots]),
        total(idx_all),
        int(iv.n_client[use].sum()),
        "client latency - (queue + compute), ratio of sums",
    )
    srv = cli = None
    if has_request:
        srv = _ci(
            np.array([server(i) for i in boots]),
            server(idx_all),
            len(idx_all),
            "Triton request - queue - compute",
        )
        cli = _ci(
            np.array([client(i) for i in boots]),
            client(idx_all),
            len(idx_all),
            "client latency - Triton request duration",
        )
    else:
        notes.append(
            "no nv_inference_request_duration_us: overhead not split into server and client"
        )
    # per interval, for the load-dependence check and the figure
    thr = iv.n_client[use] / iv.dt[use]
    ovh_i = (
        iv.lat_sum[use] / iv.n_client[use]
        - (iv.queue_us[use] + iv.compute_us[use]) / iv.items[use] / 1e3
    )
    wt = iv.n_client[use]
    slope = None
    if len(thr) >= 10 and float(np.ptp(thr)) > 0:
        x = np.column_stack([np.ones_like(thr), thr])
        sw = np.sqrt(wt)
        coef, *_ = np.linalg.lstsq(x * sw[:, None], ovh_i * sw, rcond=None)
        r = ovh_i - x @ coef
        s2 = float(np.sum(wt * r * r) / max(len(thr) - 2, 1))
        cov = s2 * np.linalg.inv((x * wt[:, None]).T @ x)
        se = math.sqrt(max(cov[1, 1], 0.0))
        slope = Estimate(
            float(coef[1]),
            float(coef[1] - 1.96 * se),
            float(coef[1] + 1.96 * se),
            len(thr),
            "WLS of per-interval overhead on throughput",
        )
        effect = abs(slope.value) * float(thr.max() - thr.min())
        if not slope.contains(0.0) and effect > max(1.0, 0.05 * abs(tot.value)):
            notes.append(
                f"overhead changes with load ({slope.value:+.3g} ms per req/s, "
                f"{effect:.1f} ms across the range): the twin's overhead is constant; "
                "suspect client-side CPU contention"
            )
    # noise of the overhead, from quiet intervals
    cv_e = None
    quiet = (
        use
        & (iv.items <= 1.05 * iv.execs)
        & (iv.queue_us <= iv.delay_us * iv.items + 0.02 * iv.compute_us)
    )
    qidx = np.flatnonzero(quiet)
    nq = int(iv.n_client[qidx].sum())
    if nq >= 200 and tot.value > 0:

        def cv_of(idx: np.ndarray) -> float:
            ss = sum(
                float(np.sum((g - g.mean()) ** 2))
                for g in (iv.groups[k] for k in idx)
                if len(g) > 1
            )
            dof = sum(len(iv.groups[k]) - 1 for k in idx if len(iv.groups[k]) > 1)
            comp = float(iv.compute_us[idx].sum() / iv.items[idx].sum() / 1e3)
            que = float(iv.queue_us[idx].sum() / iv.items[idx].sum() / 1e3)
            ov = float(iv.lat_sum[idx].sum() / iv.n_client[idx].sum()) - comp - que
            v = ss / max(dof, 1) - (comp * service_cv) ** 2
            return math.sqrt(max(v, 0.0)) / ov if ov > 0 else math.nan

        cv_e = _ci(
            np.array([cv_of(qidx[_blocks(len(qidx), rng)]) for _ in range(n_boot)]),
            cv_of(qidx),
            nq,
            "variance of quiet-interval latencies minus service noise",
        )
    else:
        notes.append(
            f"only {nq} requests in quiet intervals (< 200): overhead noise cv kept at "
            f"{prior_cv:g} (prior)"
        )
    return Overhead(tot, srv, cli, cv_e, slope, np.column_stack([thr, ovh_i, wt]), notes)


# --------------------------------------------------------------------------- start-up


@dataclass
class Startup:
    container_start_s: Estimate | None  # created -> started (minus scheduling)
    ready_s: Estimate | None  # started -> ready
    model_load_s: Estimate | None
    model_load_cv: Estimate | None
    samples: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)


def replica_phases(bundles: list[tuple[Bundle, str]]) -> dict[str, np.ndarray]:
    """Per replica start-up: created->started, started->ready, created->ready (s)."""
    d1: list[float] = []
    d2: list[float] = []
    d3: list[float] = []
    for bun, pool in bundles:
        ev = bun.events
        if ev is None:
            continue
        sel = ev.pool == pool
        for rep in np.unique(ev.replica[sel]):
            m = sel & (ev.replica == rep)
            first = {e: float(ev.t[m & (ev.event == e)].min()) for e in np.unique(ev.event[m])}
            c, s, r = first.get("created"), first.get("started"), first.get("ready")
            if c is not None and s is not None and s >= c:
                d1.append(s - c)
            if s is not None and r is not None and r >= s:
                d2.append(r - s)
            if c is not None and r is not None and r >= c:
                d3.append(r - c)
    return {
        "created_started": np.asarray(d1),
        "started_ready": np.asarray(d2),
        "created_ready": np.asarray(d3),
    }


def fit_startup(
    ph: dict[str, np.ndarray],
    schedule_s: float,
    probe_delay_s: float,
    probe_period_s: float,
    rng: np.random.Generator,
    n_boot: int,
) -> Startup:
    """Start-up phases. ready = started + max(load, delay) rounded up to the probe period, so
    load ~ mean(started->ready) - period / 2 when loads outlast the probe's initial delay."""
    notes: list[str] = []
    d1, d2 = ph["created_started"], ph["started_ready"]

    def boot(x: np.ndarray, f, method: str) -> Estimate:  # type: ignore[no-untyped-def]
        if len(x) >= 3:
            return _ci(
                np.array([f(x[rng.integers(0, len(x), len(x))]) for _ in range(n_boot)]),
                f(x),
                len(x),
                method,
            )
        return Estimate(f(x), math.nan, math.nan, len(x), method + " (too few replicas for a CI)")

    cs = (
        boot(
            d1,
            lambda x: max(float(x.mean()) - schedule_s, 0.0),
            "mean created->started minus scheduling",
        )
        if len(d1)
        else None
    )
    rd = boot(d2, lambda x: float(x.mean()), "mean started->ready") if len(d2) else None
    load = cv = None
    if len(d2):
        if float(d2.mean()) > probe_delay_s + probe_period_s:
            load = boot(
                d2,
                lambda x: max(float(x.mean()) - probe_period_s / 2, 0.0),
                "mean started->ready minus half a probe period",
            )
            if len(d2) >= 3:
                cv = boot(
                    d2,
                    lambda x: float(x.std(ddof=1) / max(x.mean() - probe_period_s / 2, 1e-9)),
                    "sd / mean of started->ready",
                )
            else:
                notes.append("fewer than 3 start-ups: model_load_cv kept at the prior")
        else:
            notes.append(
                f"replicas became ready within the readiness probe's initial delay + one "
                f"period ({probe_delay_s:g} + {probe_period_s:g} s): model_load_s is not "
                "identifiable; kept at the prior"
            )
    if not len(d1) and not len(d2):
        notes.append("no start-up events: start-up times kept at the prior")
    return Startup(cs, rd, load, cv, ph, notes)


# --------------------------------------------------------------------------- CPU and memory


def fit_cpu_per_request(
    bundles: list[tuple[Bundle, str]],
    kind: str,
    slope_ms: Any,
    rng: np.random.Generator,
    n_boot: int,
) -> Estimate | None:
    """CPU core-seconds per request beyond the compute itself (front end, (de)serialisation).

    The twin charges cores x execution time per batch (CPU devices) plus this per item;
    over 10 s bins: cpu_s - cores x busy_s = cpu_per_request x items (least squares, >= 0).
    Busy time (the sum of batch times) comes from Triton's request-weighted compute time,
    which overstates it when batch sizes spread: the central guess of `batch_variance` is
    taken off, and bins with mean batch <= 1.02 are preferred when there are five.
    """
    xs: list[float] = []
    ys: list[float] = []
    bb: list[float] = []
    for bun, pool in bundles:
        cpu = bun.prom.of("container_cpu_usage_seconds_total", pool)
        if not cpu:
            continue
        ct = bun.counters[pool]
        pcfg = bun.manifest.pools[pool]
        cores, n_inst = pcfg.resources.cpu, pcfg.instances
        bmax = pcfg.batching.max_batch_size if pcfg.batching.enabled else 1
        a, z = bun.manifest.start_unix_s, bun.manifest.end_unix_s
        edges = np.arange(a, z + 10.0, 10.0)
        busy = np.zeros(len(edges) - 1)
        items = np.zeros(len(edges) - 1)
        execs = np.zeros(len(edges) - 1)
        used = np.zeros(len(edges) - 1)
        for r, t in enumerate(ct.t):
            k = np.searchsorted(edges, t, side="left") - 1
            ok = (k >= 0) & (k < len(busy))
            n = ct.inc["nv_inference_count"][r]
            e = ct.inc["nv_inference_exec_count"][r]
            c = ct.inc["nv_inference_compute_infer_duration_us"][r]
            bb_ = n / np.maximum(e, 1)
            vmid, _ = batch_variance(bb_, np.full_like(bb_, bmax))
            spread = slope_ms(bb_) * vmid / np.maximum(bb_, 1)  # request-weighting excess, ms
            b = np.where(n > 0, (c * 1e-3 / np.maximum(n, 1) - spread) * e * 1e-3, 0.0)
            np.add.at(busy, k[ok], b[ok])
            np.add.at(items, k[ok], n[ok])
            np.add.at(execs, k[ok], e[ok])
        for s in cpu:
            if len(s.t) < 2:
                continue
            inc = np.diff(s.v)
            inc[inc < 0] = s.v[1:][inc < 0]
            k = np.searchsorted(edges, s.t[1:], side="left") - 1
            ok = (k >= 0) & (k < len(used))
            np.add.at(used, k[ok], inc[ok])
        # the twin charges cores / m per executing batch (m busy instances share the cores)
        inv_m = busy_pmf(n_inst, (busy / 10.0 / n_inst).clip(0, 1)) @ (
            1.0 / np.arange(1, n_inst + 1)
        )
        y = used - (cores * busy * inv_m if kind == "cpu" else 0.0)
        xs += items.tolist()
        ys += y.tolist()
        bb += (items / np.maximum(execs, 1)).tolist()
    if not xs:
        return None
    x, y = np.asarray(xs), np.asarray(ys)
    single = np.asarray(bb) <= 1.02  # busy time is exact only without batch-size spread
    if np.count_nonzero(single & (x > 0)) >= 5:
        x, y = x[single], y[single]

    def slope(idx: np.ndarray) -> float:
        den = float(np.sum(x[idx] ** 2))
        return max(float(np.sum(x[idx] * y[idx])) / den, 0.0) * 1e3 if den > 0 else math.nan

    idx = np.arange(len(x))
    return _ci(
        np.array([slope(_blocks(len(x), rng)) for _ in range(n_boot)]),
        slope(idx),
        len(x),
        "LS of (CPU seconds - cores x busy) on items, 10 s bins",
    )


def fit_memory_base(bundles: list[tuple[Bundle, str]]) -> Estimate | None:
    vals = [
        s.v
        for bun, pool in bundles
        for s in bun.prom.of("container_memory_working_set_bytes", pool)
        if len(s.v)
    ]
    if not vals:
        return None
    v = np.concatenate(vals) / 2**30
    return Estimate(
        float(np.percentile(v, 10)),
        float(v.min()),
        float(np.median(v)),
        len(v),
        "10th percentile of the working set (range: min..median)",
    )
