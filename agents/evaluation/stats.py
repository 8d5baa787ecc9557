"""Statistics for seed-replicated experiments: t intervals, tests, Holm, effect sizes.

Every function drops NaNs first (a metric can be undefined in a run, e.g. no batch
ran) and says so through `n`. Where a statistic is undefined (n < 2, zero variance,
all observations tied) it returns NaN with a note instead of a made-up p-value;
NaN p-values are left out of the Holm family. See docs/evaluation.md for the choices.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

NAN = math.nan
EXACT_MWU_MAX_PARTITIONS = 13_000  # exhaustive permutation MWU for tied small samples


def finite(x: Iterable[float] | np.ndarray) -> np.ndarray:
    """The finite values of `x` as a float array, sorted: every statistic of one sample here
    is order-free, and one order makes its floating-point sums — and so the tables — the same
    bit for bit however the runs arrived (parallel runs finish in any order)."""
    a = np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=float).ravel()
    return np.sort(a[np.isfinite(a)])


@dataclass(frozen=True)
class Describe:
    mean: float
    std: float  # sample SD (ddof = 1)
    ci95_low: float
    ci95_high: float
    n: int


def describe(x: Iterable[float] | np.ndarray, level: float = 0.95) -> Describe:
    """Mean, SD and Student-t interval of the mean; n = 1 gives NaN SD and bounds."""
    a = finite(x)
    n = len(a)
    if n == 0:
        return Describe(NAN, NAN, NAN, NAN, 0)
    m = float(a.mean())
    if n == 1:
        return Describe(m, NAN, NAN, NAN, 1)
    sd = float(a.std(ddof=1))
    half = float(st.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Describe(m, sd, m - half, m + half, n)


@dataclass(frozen=True)
class Outcome:
    statistic: float
    p: float
    note: str = ""

    @property
    def defined(self) -> bool:
        return math.isfinite(self.p)


def _undefined(note: str) -> Outcome:
    return Outcome(NAN, NAN, note)


def _quiet(fn, *args, **kw):  # noqa: ANN001, ANN202 - thin wrapper
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def welch(a: Iterable[float], b: Iterable[float]) -> Outcome:
    """Welch's unequal-variance t-test (two-sided): the means, without assuming equal SDs."""
    x, y = finite(a), finite(b)
    if len(x) < 2 or len(y) < 2:
        return _undefined("welch: n<2")
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return _undefined("welch: zero variance in both groups")
    r = _quiet(st.ttest_ind, x, y, equal_var=False)
    return Outcome(float(r.statistic), float(r.pvalue))


def mann_whitney(a: Iterable[float], b: Iterable[float]) -> Outcome:
    """Mann-Whitney U (two-sided), U of the first sample.

    scipy's exact null distribution assumes no ties and its normal approximation is
    poor for small samples, so small tied samples get an exhaustive permutation test.
    """
    x, y = finite(a), finite(b)
    if len(x) < 1 or len(y) < 1:
        return _undefined("mwu: empty group")
    both = np.concatenate([x, y])
    if np.ptp(both) == 0:
        return _undefined("mwu: all observations tied")
    ties = len(np.unique(both)) < len(both)
    method: object = "auto"
    small = min(len(x), len(y)) >= 2 and math.comb(len(both), len(x)) <= EXACT_MWU_MAX_PARTITIONS
    if ties and small:
        method = st.PermutationMethod(n_resamples=np.inf)
    r = _quiet(st.mannwhitneyu, x, y, alternative="two-sided", method=method)
    return Outcome(float(r.statistic), float(min(1.0, r.pvalue)))


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """Seed-matched arrays (common random numbers): seeds present and finite in both."""
    keys = sorted(k for k in a.keys() & b.keys() if math.isfinite(a[k]) and math.isfinite(b[k]))
    return np.array([a[k] for k in keys], float), np.array([b[k] for k in keys], float)


def paired_t(a: Sequence[float], b: Sequence[float]) -> Outcome:
    """Paired t-test on seed-matched differences a - b (arrays already aligned)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return _undefined("paired t: n<2 pairs")
    if np.ptp(d) == 0:
        return _undefined("paired t: constant difference")
    r = _quiet(st.ttest_1samp, d, 0.0)
    return Outcome(float(r.statistic), float(r.pvalue))


EXACT_SIGNRANK_MAX = 16  # enumerate all 2^m sign flips up to this many non-zero differences


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> Outcome:
    """Wilcoxon signed-rank on seed-matched differences (Pratt's zero handling).

    Pratt keeps zero differences in the ranking (more conservative than dropping
    them). Up to 16 non-zero differences the p-value is exact by enumerating every
    sign flip (valid with ties and zeros, and ~1000x faster than scipy's generic
    permutation path); beyond that scipy's normal approximation with tie correction.
    """
    d = np.asarray(a, float) - np.asarray(b, float)
    d = d[np.isfinite(d)]
    if len(d) < 1:
        return _undefined("wilcoxon: no pairs")
    if not np.any(d != 0):
        return _undefined("wilcoxon: all differences zero")
    ranks = st.rankdata(np.abs(d))[d != 0]  # Pratt: zeros take ranks, then drop out
    pos = d[d != 0] > 0
    m = len(ranks)
    if m <= EXACT_SIGNRANK_MAX:
        t_plus = float(ranks[pos].sum())
        flips = (np.arange(2**m)[:, None] >> np.arange(m)) & 1
        null = flips @ ranks
        eps = 1e-9 * max(1.0, float(ranks.sum()))
        p = 2 * min(np.mean(null >= t_plus - eps), np.mean(null <= t_plus + eps))
        return Outcome(min(t_plus, float(ranks.sum()) - t_plus), float(min(1.0, p)))
    r = _quiet(st.wilcoxon, d, zero_method="pratt", alternative="two-sided", method="asymptotic")
    return Outcome(float(r.statistic), float(min(1.0, r.pvalue)))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values; NaNs are not in the family and stay NaN."""
    p = np.asarray(pvalues, float)
    out = np.full(p.shape, NAN)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def cohens_d(a: Iterable[float], b: Iterable[float]) -> float:
    """(mean a - mean b) / pooled SD (ddof 1); NaN when the pooled SD is zero or n < 2."""
    x, y = finite(a), finite(b)
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        return NAN
    sp2 = ((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2)
    if sp2 <= 0:
        return NAN
    return float((x.mean() - y.mean()) / math.sqrt(sp2))


def hedges_g(a: Iterable[float], b: Iterable[float]) -> float:
    """Cohen's d with the small-sample bias correction J = 1 - 3 / (4 (n1 + n2) - 9)."""
    x, y = finite(a), finite(b)
    d = cohens_d(x, y)
    return d * (1 - 3 / (4 * (len(x) + len(y)) - 9)) if math.isfinite(d) else NAN


def relative_change(a: Iterable[float], b: Iterable[float]) -> float:
    """(mean a - mean b) / |mean b|: the policy's change against the reference."""
    x, y = finite(a), finite(b)
    if len(x) == 0 or len(y) == 0 or y.mean() == 0:
        return NAN
    return float((x.mean() - y.mean()) / abs(y.mean()))


# --------------------------------------------------------------------------- tables

SUMMARY_COLUMNS: tuple[str, ...] = (
    "policy", "pattern", "metric", "mean", "std", "ci95_low", "ci95_high", "n",
)  # fmt: skip
P_COLUMNS: tuple[str, ...] = ("paired_p", "wilcoxon_p", "welch_p", "mwu_p")
SIGNIFICANCE_COLUMNS: tuple[str, ...] = (
    "policy", "reference", "pattern", "metric", "n", "n_ref", "n_pairs",
    "mean", "mean_ref", "diff", "diff_ci95_low", "diff_ci95_high", "rel_change",
    "cohens_d", "hedges_g",
    "paired_t", "paired_p", "paired_p_holm", "wilcoxon_w", "wilcoxon_p", "wilcoxon_p_holm",
    "welch_t", "welch_p", "welch_p_holm", "mwu_u", "mwu_p", "mwu_p_holm", "note",
)  # fmt: skip
NOT_TESTED: frozenset[str] = frozenset({"duration_s"})  # bookkeeping, fixed by the scenario

Cells = Mapping[tuple[str, str], Mapping[int, Mapping[str, float]]]
"""(policy, pattern) -> seed -> metric -> value."""


def _values(cells: Cells, policy: str, pattern: str, metric: str) -> dict[int, float]:
    runs = cells.get((policy, pattern), {})
    return {s: float(m.get(metric, NAN)) for s, m in runs.items()}


def summary_table(
    cells: Cells, policies: Sequence[str], patterns: Sequence[str], metrics: Sequence[str]
) -> list[dict[str, object]]:
    """One row per pattern x policy x metric (that order) with the t interval over seeds."""
    rows: list[dict[str, object]] = []
    for pat in patterns:
        for pol in policies:
            if (pol, pat) not in cells:
                continue
            for met in metrics:
                d = describe(_values(cells, pol, pat, met).values())
                rows.append({"policy": pol, "pattern": pat, "metric": met, **d.__dict__})
    return rows


def compare(a: Mapping[int, float], b: Mapping[int, float]) -> dict[str, object]:
    """Every test and effect size of policy values `a` against reference values `b`."""
    xa, xb = finite(a.values()), finite(b.values())
    pa, pb = paired(a, b)
    tests = {
        "paired": paired_t(pa, pb),
        "wilcoxon": wilcoxon(pa, pb),
        "welch": welch(xa, xb),
        "mwu": mann_whitney(xa, xb),
    }
    dci = describe(pa - pb)
    ma = float(xa.mean()) if len(xa) else NAN
    mb = float(xb.mean()) if len(xb) else NAN
    return {
        "n": len(xa), "n_ref": len(xb), "n_pairs": len(pa),
        "mean": ma, "mean_ref": mb, "diff": ma - mb,
        "diff_ci95_low": dci.ci95_low, "diff_ci95_high": dci.ci95_high,
        "rel_change": relative_change(xa, xb),
        "cohens_d": cohens_d(xa, xb), "hedges_g": hedges_g(xa, xb),
        "paired_t": tests["paired"].statistic, "paired_p": tests["paired"].p,
        "wilcoxon_w": tests["wilcoxon"].statistic, "wilcoxon_p": tests["wilcoxon"].p,
        "welch_t": tests["welch"].statistic, "welch_p": tests["welch"].p,
        "mwu_u": tests["mwu"].statistic, "mwu_p": tests["mwu"].p,
        "note": "; ".join(t.note for t in tests.values() if t.note),
    }  # fmt: skip


def significance_table(
    cells: Cells,
    policies: Sequence[str],
    patterns: Sequence[str],
    metrics: Sequence[str],
    reference: str,
    family: Sequence[str] = ("pattern", "metric"),
) -> list[dict[str, object]]:
    """Each policy against `reference` per pattern and metric, Holm-adjusted per family.

    The default family is one pattern x metric across all policies compared with
    the reference; each test (paired t, Wilcoxon, Welch, MWU) is adjusted on its own.
    """
    rows: list[dict[str, object]] = []
    for pat in patterns:
        if (reference, pat) not in cells:
            continue
        for met in metrics:
            if met in NOT_TESTED:
                continue
            ref = _values(cells, reference, pat, met)
            for pol in policies:
                if pol == reference or (pol, pat) not in cells:
                    continue
                r = {"policy": pol, "reference": reference, "pattern": pat, "metric": met}
                r.update(compare(_values(cells, pol, pat, met), ref))
                rows.append(r)
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(tuple(r[k] for k in family), []).append(i)
    for idx in groups.values():
        for col in P_COLUMNS:
            adj = holm([float(rows[i][col]) for i in idx])  # type: ignore[arg-type]
            for i, v in zip(idx, adj, strict=True):
                rows[i][col + "_holm"] = float(v)
    return [{c: r[c] for c in SIGNIFICANCE_COLUMNS} for r in rows]
