"""Service time vs batch size from isolated measurements: the curve, its noise, core scaling."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from calibration.estimate import Estimate, fixed, interval


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


def affine_wls(b: np.ndarray, m: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
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


def fit_isolated(
    b: np.ndarray,
    ms: np.ndarray,
    rng: np.random.Generator,
    n_boot: int,
    source: np.ndarray | None = None,
) -> CurveFit:
    """Per-size means, an affine fit with a lack-of-fit test, and the noise cv and family.

    Execution times are modelled as lognormal around each size's mean, with one sigma
    for all sizes (the twin's noise is one `Dist` per device). Outliers further than
    6 robust sigmas (median / MAD) from their size's median are dropped and counted.
    `source` labels each row's recording (bundle): the noise is then the spread *within*
    a recording and size, since a shift of level between recordings (other work on a
    shared host) is not batch-to-batch noise; the means still average all recordings.
    """
    b = np.asarray(b, dtype=int)
    src = np.zeros(len(b), int) if source is None else np.unique(source, return_inverse=True)[1]
    logs = np.log(np.asarray(ms, dtype=float))
    sizes = np.unique(b)
    idx = np.searchsorted(sizes, b)
    med = np.array([np.median(logs[idx == i]) for i in range(len(sizes))])
    res = logs - med[idx]
    rob = 1.4826 * float(np.median(np.abs(res))) or 1e-12
    keep = np.abs(res) <= 6 * rob
    dropped = int(np.count_nonzero(~keep))
    b, logs, ms, src = b[keep], logs[keep], np.asarray(ms, dtype=float)[keep], src[keep]
    sizes = np.unique(b)
    cell = np.unique(src * (int(b.max()) + 1) + b, return_inverse=True)[1]  # (recording, size)
    counts = np.bincount(np.searchsorted(sizes, b), minlength=len(sizes))

    def estimate(
        bb: np.ndarray, ll: np.ndarray, cc: np.ndarray
    ) -> tuple[np.ndarray, float, float, float, float]:
        mu, sigma = _lognormal_stats(bb, ll, sizes)
        means = np.exp(mu + sigma * sigma / 2)
        cells = np.unique(cc)
        _, s_in = _lognormal_stats(np.searchsorted(cells, cc), ll, np.arange(len(cells)))
        cv = math.sqrt(math.expm1(s_in * s_in))
        w = counts / np.maximum(means * max(cv, 1e-3), 1e-12) ** 2
        base, per, _ = affine_wls(sizes.astype(float), means, w)
        return means, sigma, cv, base, per

    means, sigma, cv, base, per = estimate(b, logs, cell)
    boots = []
    groups = [np.flatnonzero(b == s) for s in sizes]
    for _ in range(n_boot):
        pick = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        boots.append(estimate(b[pick], logs[pick], cell[pick]))
    bm = np.array([x[0] for x in boots])
    mean_lo, mean_hi = np.percentile(bm, [2.5, 97.5], axis=0) if boots else (means, means)
    n = len(ms)
    cv_e = interval(np.array([x[2] for x in boots]), cv, n, "lognormal ML, pooled over sizes")
    base_e = interval(np.array([x[3] for x in boots]), base, n, "WLS on per-size means")
    per_e = interval(np.array([x[4] for x in boots]), per, n, "WLS on per-size means")
    w = counts / np.maximum(means * max(cv, 1e-3), 1e-12) ** 2
    _, _, chi2 = affine_wls(sizes.astype(float), means, w)
    dof = len(sizes) - 2
    p = chi2_sf(chi2, dof) if dof > 0 else 1.0
    rel = np.abs(means - (base + per * (sizes - 1))) / means
    form = "table" if (p < 1e-3 and float(rel.max()) > 0.02) else "affine"
    s_in = math.sqrt(math.log1p(cv * cv))
    cell_mu = np.bincount(cell, weights=logs) / np.bincount(cell)
    family, loglik = _noise_family(ms / np.exp(cell_mu[cell] + s_in * s_in / 2), s_in)
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


Cells = list[tuple[np.ndarray, np.ndarray]]


def _paired_cells(
    b: np.ndarray, ms: np.ndarray, cores: np.ndarray, ref: float
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, Cells] | None:
    """Isolated rows at the reference and at the most common other core count, paired by
    batch size: (other count c, rows used, their log times, sizes at both, per size the
    row indices at c and at ref). None when no size was measured at both counts."""
    other = cores != ref
    if not np.any(other):
        return None
    c = float(Counter(cores[other].tolist()).most_common(1)[0][0])
    sel = (cores == ref) | (cores == c)
    bs, logs, at_c = b[sel], np.log(ms[sel]), cores[sel] == c
    sizes = np.intersect1d(bs[at_c], bs[~at_c])
    if not len(sizes):
        return None
    cells = [(np.flatnonzero((bs == z) & at_c), np.flatnonzero((bs == z) & ~at_c)) for z in sizes]
    return c, sel, logs, sizes, cells


def _exponent_wls(
    paired: tuple[float, np.ndarray, np.ndarray, np.ndarray, Cells],
    ref: float,
    columns: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    n_boot: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-size exponents e_s = (mean log t at c - mean log t at ref) / log(ref / c),
    regressed on `columns(sizes)` by least squares weighted by each size's smaller count:
    (coefficients, their bootstrap draws, resampling within (cores, size) cells)."""
    c, _, logs, sizes, cells = paired
    w = np.sqrt(np.array([min(len(i), len(j)) for i, j in cells], float))
    design = columns(sizes) * w[:, None]
    scale = math.log(ref / c)

    def est(pick: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        e = np.array([logs[i].mean() - logs[j].mean() for i, j in pick]) / scale
        return np.linalg.lstsq(design, e * w, rcond=None)[0]

    def resample() -> Cells:
        return [(i[rng.integers(0, len(i), len(i))], j[rng.integers(0, len(j), len(j))])
                for i, j in cells]  # fmt: skip

    boot = np.array([est(resample()) for _ in range(n_boot)]).reshape(n_boot, -1)
    return est(cells), boot


def fit_core_scaling(
    b: np.ndarray,
    ms: np.ndarray,
    cores: np.ndarray,
    ref: float,
    rng: np.random.Generator,
    n_boot: int,
) -> Estimate | None:
    """`core_scaling` e from isolated times at two core counts: t(c) = t(ref) (ref / c)^e.

    e is the mean of the per-size exponents (`_exponent_wls` on a constant), weighted by
    the smaller count. None when every isolated row is at the reference core count.
    """
    paired = _paired_cells(b, ms, cores, ref)
    if paired is None:
        return None
    val, boot = _exponent_wls(paired, ref, lambda z: np.ones((len(z), 1)), rng, n_boot)
    return interval(
        boot[:, 0], float(val[0]), int(paired[1].sum()),
        f"isolated times at {paired[0]:g} vs {ref:g} cores, per batch size",
    )  # fmt: skip


def fit_core_scaling_by_size(
    b: np.ndarray,
    ms: np.ndarray,
    cores: np.ndarray,
    ref: float,
    rng: np.random.Generator,
    n_boot: int,
) -> tuple[Estimate, Estimate] | None:
    """Core-scaling exponent as a function of the batch size: e(b) = e1 + d log2(b).

    The per-size exponents of `fit_core_scaling`, regressed on log2(s) (`_exponent_wls`).
    Returns (e1 = `core_scaling`, d = `core_scaling_per_doubling`) with bootstrap
    intervals, or None with fewer than two sizes measured at both core counts.
    """
    paired = _paired_cells(b, ms, cores, ref)
    if paired is None or len(paired[3]) < 2:
        return None

    def columns(z: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(z)), np.log2(z.astype(float))])

    val, boot = _exponent_wls(paired, ref, columns, rng, n_boot)
    how = f"isolated times at {paired[0]:g} vs {ref:g} cores, WLS of per-size exponents on log2(b)"
    n = int(paired[1].sum())
    return (
        interval(boot[:, 0], float(val[0]), n, how + ": b = 1"),
        interval(boot[:, 1], float(val[1]), n, how + ": slope"),
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
