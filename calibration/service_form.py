"""Which form explains the gap between isolated execution times and Triton's counters under
load: a **multiplicative** factor (t_load(b) = k x t_iso(b), the in-load factor k of
`calibration.in_load`: the whole curve, per-item cost included, scales) or an **additive**
per-execution hand-off (t_load(b) = t_iso(b) + a: a fixed cost per execution — e.g. a Python
backend's ~4-5 ms around ONNX Runtime — while the per-item cost stays the isolated one).

Both have one parameter on top of the isolated curve (base, per-item cost), so they are
compared by **held-out likelihood**: the counter chunks of lone instances are split into
folds (leave one bundle out when there are two or more bundles, else five contiguous blocks
of time), the parameter is fitted on the other folds and each held-out chunk's request-
weighted compute per request is scored under a lognormal error whose variance is the
chunk's own (service noise over its batches + the batch-size spread it cannot resolve,
`in_load.spread_bounds`). The forms only differ where batches are larger than one, so
chunks at b̄ = 1 score the same under both.

The additive form is chosen only when its held-out log-likelihood beats the multiplicative
form's by more than `MIN_LOGLIK_GAIN` (2 log-likelihood units, a likelihood ratio of e² ≈ 7:
"positive" evidence): the multiplicative form is the incumbent, and without that evidence
an existing calibration stays as it was. Both are reported (`NAME.report.md`,
`kisim calibrate --json`). The additive form needs no twin change: it is a service curve
(base + a, same per-item cost).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from calibration.estimate import Estimate, block_indices, interval
from calibration.in_load import Chunks, batch_variance, spread_bounds
from calibration.service_curve import CurveFit

MIN_LOGLIK_GAIN = 2.0
FORMS = ("multiplicative", "additive")


@dataclass
class FormChoice:
    chosen: str  # "multiplicative" | "additive"
    k: Estimate  # multiplicative factor fitted on all chunks (not only narrow ones)
    a: Estimate  # additive per-execution cost, ms
    heldout_loglik: dict[str, float]  # summed over held-out chunks
    n_chunks: int
    folds: str  # how the chunks were split
    notes: list[str] = field(default_factory=list)
    # the additive cost fitted on the chunks the in-load factor k uses (batches of one where
    # there are enough): what the calibration applies when the additive form is chosen
    a_level: Estimate | None = None

    @property
    def gain(self) -> float:
        """Held-out log-likelihood of the additive form minus the multiplicative one."""
        return self.heldout_loglik["additive"] - self.heldout_loglik["multiplicative"]


def _prepare(ch: Chunks, cf: CurveFit, cv: float) -> tuple[np.ndarray, ...]:
    """Per chunk: (observed compute per request, requests merged per request E_req[b - 1] =
    b̄ - 1 + Var(b) / b̄ (central guess of the spread), relative variance (service noise over
    its batches + the spread it cannot resolve)); then the isolated per-size means, their
    sizes and relative variances (from their 95 % intervals)."""
    lo, mid, hi = spread_bounds(ch, cf)
    width = (hi - lo) / mid
    var = cv * cv / ch.execs + width**2 / 12 + 1e-6
    vmid, _ = batch_variance(ch.bbar, ch.bmax)
    merged = ch.bbar - 1 + vmid / ch.bbar
    se = (cf.mean_hi - cf.mean_lo) / 3.92 / cf.means
    se = np.where(np.isfinite(se) & (se > 0), se, cv / np.sqrt(np.maximum(cf.counts, 1)))
    return ch.per_request_ms, merged, var, cf.means, cf.sizes.astype(float), se**2 + 1e-8


def _predict(form: str, th: np.ndarray, e1: np.ndarray) -> np.ndarray:
    """Per-request compute under a form, th = (base, per item, k or a, merge):
    (k x curve or curve + a) + merge x E_req[b - 1], curve = base + per item x E_req[b - 1]
    (Triton's request-weighted mean of an affine curve)."""
    curve = th[0] + th[1] * e1
    level = curve * th[2] if form == "multiplicative" else curve + th[2]
    return np.maximum(level + th[3] * e1, 1e-9)


def _fit(form: str, d: tuple[np.ndarray, ...], idx: np.ndarray) -> np.ndarray:
    """(base, per item, k or a, merge) jointly from the isolated means (which pin the curve)
    and the chunks `idx`: weighted least squares on the log scale (weights 1 / variance),
    Gauss-Newton; merge >= 0 (the batcher's cost) by an active set: when the free fit puts
    it below 0, the fit is redone with merge = 0."""
    obs, e1, var, iso, sizes, iso_var = d
    obs, e1, var = obs[idx], e1[idx], var[idx]
    use_m = bool(np.any(e1 > 1e-6))
    free = [0, 1, 2, 3] if use_m else [0, 1, 2]
    if len(sizes) < 2:
        free.remove(1)
    th = _gauss_newton(form, obs, e1, var, iso, sizes, iso_var, free)
    if use_m and th[3] < 0:
        th = _gauss_newton(form, obs, e1, var, iso, sizes, iso_var, [i for i in free if i != 3])
    return th


def _gauss_newton(
    form: str, obs: np.ndarray, e1: np.ndarray, var: np.ndarray, iso: np.ndarray,
    sizes: np.ndarray, iso_var: np.ndarray, free: list[int],
) -> np.ndarray:  # fmt: skip
    y = np.concatenate([np.log(obs), np.log(iso)])
    w = np.concatenate([1 / var, 1 / iso_var])
    per0 = float(np.polyfit(sizes - 1, iso, 1)[0]) if len(sizes) > 1 else 0.0
    th = np.array([float(iso[0]) - per0 * (sizes[0] - 1), max(per0, 0.0),
                   1.0 if form == "multiplicative" else 0.0, 0.0])  # fmt: skip
    for _ in range(100):
        pc = _predict(form, th, e1)
        pi = np.maximum(th[0] + th[1] * (sizes - 1), 1e-9)
        r = y - np.log(np.concatenate([pc, pi]))
        curve = th[0] + th[1] * e1
        k = th[2] if form == "multiplicative" else 1.0
        lvl = curve if form == "multiplicative" else np.ones(len(obs))
        jc = {0: k / pc, 1: k * e1 / pc, 2: lvl / pc, 3: e1 / pc}
        ji = {0: 1 / pi, 1: (sizes - 1) / pi, 2: 0 * sizes, 3: 0 * sizes}
        J = np.column_stack([np.concatenate([jc[i], ji[i]]) for i in free])
        A = J.T @ (J * w[:, None])
        step = np.linalg.solve(A + 1e-12 * np.eye(len(free)), J.T @ (w * r))
        th[free] += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return th


def _chunk_loglik(form: str, th: np.ndarray, d: tuple[np.ndarray, ...], idx: np.ndarray) -> float:
    obs, e1, var = d[0][idx], d[1][idx], d[2][idx]
    return float(_loglik(obs, _predict(form, th, e1), var).sum())


def _level_cost(ch: Chunks, cf: CurveFit, cv: float, idx: np.ndarray) -> float:
    """The additive cost on chunks `idx` against the isolated curve as fitted (its table or
    affine form, the spread's central guess): what k is to the multiplicative form."""
    lo, mid, hi = spread_bounds(ch, cf)
    width = (hi - lo) / mid
    var = (cv * cv / ch.execs + width**2 / 12 + 1e-6)[idx]
    obs, m = ch.per_request_ms[idx], mid[idx]
    w = 1 / (var * m * m)
    a = float(np.sum(w * (obs - m)) / np.sum(w))
    for _ in range(20):  # log-scale least squares, from the linearised estimate
        pred = np.maximum(m + a, 1e-9)
        step = float(np.sum((1 / var) * np.log(obs / pred) / pred) / np.sum((1 / var) / pred**2))
        a += step
        if abs(step) < 1e-10:
            break
    return a


def _loglik(obs: np.ndarray, pred: np.ndarray, var: np.ndarray) -> np.ndarray:
    r = np.log(obs / pred)
    return -0.5 * (np.log(2 * math.pi * var) + r * r / var)


def _folds(ch: Chunks) -> tuple[list[np.ndarray], str]:
    names = sorted(set(ch.bundle.tolist()))
    if len(names) >= 2:
        folds = [np.flatnonzero(ch.bundle == n) for n in names]
        return folds, f"leave one bundle out ({len(names)})"
    order = np.argsort(ch.t_end, kind="stable")
    return [np.sort(x) for x in np.array_split(order, 5)], "5 contiguous blocks of time"


def choose_form(
    ch: Chunks,
    curve: CurveFit,
    cv: float,
    rng: np.random.Generator,
    n_boot: int,
    level_mask: np.ndarray | None = None,
) -> FormChoice | None:
    """Both forms (each with a per-merged-request cost as a nuisance parameter, the batcher's
    merging that neither form is about) fitted on the chunks of lone instances, compared by
    held-out likelihood; None when there are fewer than 10 chunks. `level_mask`: the chunks
    the in-load factor k rests on, where the additive cost to apply is fitted."""
    if len(ch) < 10 or curve.source != "isolated":
        return None
    d = _prepare(ch, curve, cv)
    folds, how = _folds(ch)
    ll = {}
    for form in FORMS:
        tot = 0.0
        for test in folds:
            train = np.setdiff1d(np.arange(len(ch)), test)
            if len(train):
                tot += _chunk_loglik(form, _fit(form, d, train), d, test)
        ll[form] = tot
    every = np.arange(len(ch))
    k0 = float(_fit("multiplicative", d, every)[2])
    a0 = float(_fit("additive", d, every)[2])
    lvl = every if level_mask is None or not np.any(level_mask) else np.flatnonzero(level_mask)
    a_lvl0 = _level_cost(ch, curve, cv, lvl)
    kb, ab, lb = [], [], []
    for i in range(n_boot):
        idx = block_indices(len(ch), rng)
        ci = curve.resampled(i)
        di = _prepare(ch, ci, cv)
        kb.append(_fit("multiplicative", di, idx)[2])
        ab.append(_fit("additive", di, idx)[2])
        lb.append(_level_cost(ch, ci, cv, lvl[block_indices(len(lvl), rng)]))
    k = interval(np.array(kb), k0, len(ch), "joint with a merge cost, all lone-instance chunks")
    a = interval(np.array(ab), a0, len(ch), "joint with a merge cost, all lone-instance chunks")
    a_level = interval(np.array(lb), a_lvl0, len(lvl), "per-execution cost, the chunks k uses")
    gain = ll["additive"] - ll["multiplicative"]
    chosen = "additive" if gain > MIN_LOGLIK_GAIN else "multiplicative"
    spread = float(np.ptp(ch.bbar))
    notes = [
        f"service form: {chosen} (held-out log-likelihood additive - multiplicative = "
        f"{gain:+.2f} over {len(ch)} chunks, {how}; additive needs > {MIN_LOGLIK_GAIN:g})"
    ]
    if abs(gain) < 1e-6:
        notes.append(
            "the counters cannot tell the forms apart here: with a per-merged-request cost "
            "both are linear in E_req[b - 1]; they differ only where the multiplicative form "
            "would need a negative merge cost (an in-load per-item cost below k x the isolated)"
        )
    elif spread < 0.5:
        notes.append(
            "the chunks' mean batch sizes span < 0.5: the forms cannot be told apart "
            "(they differ only for batches larger than one)"
        )
    return FormChoice(chosen, k, a, ll, len(ch), how, notes, a_level)
