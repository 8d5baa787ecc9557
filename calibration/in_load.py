"""Triton's counters in chunks, and the in-load factor k that reconciles them with the
isolated curve (or a curve from the counters alone when there are no isolated times)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from calibration.bundle import Bundle
from calibration.estimate import Estimate, block_indices, fixed, interval
from calibration.prometheus import CounterTable
from calibration.service_curve import CurveFit, affine_wls

MIN_EXEC_PER_CHUNK = 20  # batches per counter chunk (the noise of its mean ~ cv / sqrt(20))
MAX_CHUNK_S = 30.0
K_MIN_EFFECT = 0.02  # an in-load factor is applied only if significant and at least 2 %


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
    replica: np.ndarray  # str: the replica's series name (requests.csv's `replica`)

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
                            ("replica", ct.replicas[r]),
                            ("t_end", t[k]),
                            ("dt", acc[0]),
                            ("items", acc[1]),
                            ("execs", acc[2]),
                            ("compute_ms", acc[3] / 1e3),
                            ("queue_ms", acc[4] / 1e3),
                            ("instances", cfg.instances),
                            ("cores", cfg.compute_cores),
                            ("bmax", cfg.batching.max_batch_size if cfg.batching.enabled else 1),
                        ):
                            cols[key].append(v)
                    acc[:] = 0
    return Chunks(
        **{k: np.asarray(v, dtype=object if k in ("bundle", "replica") else float)
           for k, v in cols.items()}
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
    why: str = ""  # why k_applied is not k (set by whichever fit sets k_applied)


NOT_SIGNIFICANT = f"CI spans 1 or |k - 1| < {K_MIN_EFFECT:.0%}"


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
    a model, the bounds are facts. Of those, only chunks of batches of one request when
    there are ten: a batch the batcher merged from several requests also pays
    `batch_merge_ms` (fitted after k, `calibration.concurrency`), which k must not absorb.
    The bootstrap resamples chunks and the isolated curve together, so k's interval
    includes the curve's own uncertainty.
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
    one = narrow & (ch.bbar <= 1 + 1e-9)  # batches of one request: no batcher merging in them
    if np.count_nonzero(one) >= 10:
        narrow = one
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
    boots = np.array([solve(block_indices(len(ch), rng), *redo(i)) for i in range(n_boot)])
    k = interval(np.exp(boots), math.exp(logk), len(ch), "weighted log-ratio, counters vs isolated")
    k_applied, why = 1.0, NOT_SIGNIFICANT
    if math.isfinite(k.lo) and not k.contains(1.0) and abs(k.value - 1) >= K_MIN_EFFECT:
        k_applied, why = k.value, ""
        notes.append(
            f"the counters show compute {k.value - 1:+.1%} vs the isolated curve "
            f"(95% CI {k.lo:.3f}..{k.hi:.3f}): the curve is scaled by {k.value:.3f}"
        )
    return InLoad(k, k_applied, np.exp(y), w, usable, notes, why if k.value != 1.0 else "")


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
            base, s, _ = affine_wls(bb[idx], yy, ww)
            s = max(s, 0.0)
        return base, s

    base, per = solve(np.arange(len(ch)))
    boots = np.array([solve(block_indices(len(ch), rng)) for _ in range(n_boot)])
    fit = CurveFit(
        "counters",
        np.array([1]),
        np.array([base]),
        np.array([math.nan]),
        np.array([math.nan]),
        np.array([0]),
        interval(boots[:, 0], base, len(ch), "WLS on counter chunks"),
        interval(boots[:, 1], per, len(ch), "WLS on counter chunks"),
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
