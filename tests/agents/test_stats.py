"""agents.evaluation.stats against hand-worked values and scipy; degenerate inputs never lie."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as st

from agents.evaluation import stats

pytestmark = pytest.mark.filterwarnings("error")  # degenerate cases must be quiet


def test_describe_matches_hand_computed_t_interval() -> None:
    # n = 5: t_{0.975, 4} = 2.776 (tables); sd = sqrt(2.5)
    d = stats.describe([1, 2, 3, 4, 5])
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert d.n == 5 and d.mean == 3.0 and d.std == pytest.approx(math.sqrt(2.5))
    assert d.ci95_low == pytest.approx(3 - half, abs=1e-3)
    assert d.ci95_high == pytest.approx(3 + half, abs=1e-3)
    # n = 10: t_{0.975, 9} = 2.262
    x = np.arange(10.0)
    d = stats.describe(x)
    half = 2.262 * x.std(ddof=1) / math.sqrt(10)
    assert (d.ci95_low, d.ci95_high) == pytest.approx((4.5 - half, 4.5 + half), abs=2e-3)


def test_describe_small_and_nan() -> None:
    one = stats.describe([7.0, math.nan])
    assert one.n == 1 and one.mean == 7.0
    assert math.isnan(one.std) and math.isnan(one.ci95_low) and math.isnan(one.ci95_high)
    assert stats.describe([]).n == 0 and math.isnan(stats.describe([]).mean)
    const = stats.describe([2.0, 2.0, 2.0])
    assert (const.std, const.ci95_low, const.ci95_high) == (0.0, 2.0, 2.0)


A = [12.1, 14.3, 11.8, 13.9, 15.2, 12.7, 13.3, 14.8, 12.2, 13.6]
B = [14.9, 15.8, 13.1, 16.4, 15.0, 17.2, 14.4, 15.9, 16.8, 14.1]


def test_welch_and_mwu_match_scipy() -> None:
    w = stats.welch(A, B)
    ref = st.ttest_ind(A, B, equal_var=False)
    assert (w.statistic, w.p) == pytest.approx((ref.statistic, ref.pvalue))
    m = stats.mann_whitney(A, B)
    ref = st.mannwhitneyu(A, B, alternative="two-sided")
    assert (m.statistic, m.p) == pytest.approx((ref.statistic, ref.pvalue))


def test_paired_tests_match_scipy() -> None:
    p = stats.paired_t(A, B)
    ref = st.ttest_rel(A, B)
    assert (p.statistic, p.p) == pytest.approx((ref.statistic, ref.pvalue))
    w = stats.wilcoxon(A, B)
    ref = st.wilcoxon(np.subtract(A, B), zero_method="pratt")
    assert (w.statistic, w.p) == pytest.approx((ref.statistic, ref.pvalue))


def test_wilcoxon_with_ties_and_zeros_is_exact() -> None:
    d = np.array([1.0, -1.0, 2.0, 2.0, 0.0, 3.0, 1.0])
    ref = st.wilcoxon(d, zero_method="pratt", method=st.PermutationMethod(n_resamples=np.inf))
    w = stats.wilcoxon(d, np.zeros_like(d))
    assert (w.statistic, w.p) == pytest.approx((ref.statistic, ref.pvalue))
    # ten seeds, every one better by the same rank pattern: exact p = 2 / 2^10
    assert stats.wilcoxon(np.full(10, 5.0), np.zeros(10)).p == pytest.approx(2 / 1024)


def test_mwu_small_tied_samples_are_exact() -> None:
    # complete separation of 3 vs 3: exact two-sided p = 2 / C(6, 3) = 0.1
    # (the tie-corrected normal approximation would claim 0.047)
    r = stats.mann_whitney([1, 1, 1], [2, 2, 2])
    assert r.p == pytest.approx(0.1)
    # brute force over all partitions for a tied sample
    x, y = [1.0, 2.0, 2.0, 3.0], [2.0, 3.0, 3.0, 4.0, 5.0]
    pool = np.array(x + y)
    u_obs = st.mannwhitneyu(x, y).statistic
    us = np.array([st.mannwhitneyu(pool[list(c)], np.delete(pool, list(c))).statistic
                   for c in itertools.combinations(range(len(pool)), len(x))])  # fmt: skip
    exact = 2 * min(np.mean(us >= u_obs), np.mean(us <= u_obs))  # twice the smaller tail
    assert stats.mann_whitney(x, y).p == pytest.approx(exact)
    assert math.isfinite(stats.mann_whitney([1.0], [1.0, 2.0]).p)  # n = 1 with a tie


def test_degenerate_cases_give_nan_not_fake_p() -> None:
    same = [3.0, 3.0, 3.0, 3.0]
    for out in (stats.welch(same, same), stats.mann_whitney(same, same),
                stats.paired_t(same, same), stats.wilcoxon(same, same)):  # fmt: skip
        assert math.isnan(out.p) and out.note
    # two constant groups that differ: t undefined, ranks still informative
    assert math.isnan(stats.welch([1, 1, 1], [2, 2, 2]).p)
    assert math.isnan(stats.paired_t([1, 1, 1], [2, 2, 2]).p)  # constant difference
    assert stats.welch([1.0], [1.0, 2.0]).note == "welch: n<2"
    assert math.isnan(stats.cohens_d([1, 1, 1], [2, 2, 2]))
    assert math.isnan(stats.relative_change([1.0], [0.0]))
    # NaNs are dropped, not propagated
    r = stats.welch([*A, math.nan], B)
    assert r.p == pytest.approx(st.ttest_ind(A, B, equal_var=False).pvalue)


def test_holm_hand_worked() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    adj = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adj = stats.holm([0.01, math.nan, 0.04])  # NaN is outside the family (m = 2)
    assert adj[0] == pytest.approx(0.02) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.04)
    assert stats.holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]).size == 0


def test_effect_sizes_hand_worked() -> None:
    assert stats.cohens_d([1, 2, 3], [2, 3, 4]) == pytest.approx(-1.0)  # both SDs 1
    assert stats.hedges_g([1, 2, 3], [2, 3, 4]) == pytest.approx(-1.0 * (1 - 3 / 15))
    assert stats.relative_change([90, 110], [200, 200]) == pytest.approx(-0.5)


def test_paired_alignment_by_seed() -> None:
    a = {0: 1.0, 1: 2.0, 2: math.nan, 5: 9.0}
    b = {1: 1.5, 0: 0.5, 2: 3.0, 3: 4.0}
    x, y = stats.paired(a, b)
    assert x.tolist() == [1.0, 2.0] and y.tolist() == [0.5, 1.5]


def test_significance_table_holm_family_is_pattern_metric() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(100, 10, 8)  # common random numbers: a per-seed effect shared by all
    cells = {}
    for pol, eff in (("hpa", 0.0), ("a", 3.0), ("b", 0.1), ("c", -5.0)):
        for pat in ("ramp", "spike"):
            noise = rng.normal(0, 0.5, 8)
            cells[(pol, pat)] = {s: {"p95_ms": base[s] + eff + noise[s], "duration_s": 600.0}
                                 for s in range(8)}  # fmt: skip
    rows = stats.significance_table(cells, ["hpa", "a", "b", "c"], ["ramp", "spike"],
                                    ["p95_ms", "duration_s"], "hpa")  # fmt: skip
    assert len(rows) == 6 and {r["metric"] for r in rows} == {"p95_ms"}
    ramp = [r for r in rows if r["pattern"] == "ramp"]
    assert [r["paired_p_holm"] for r in ramp] == pytest.approx(
        stats.holm([r["paired_p"] for r in ramp]).tolist()
    )
    a = next(r for r in ramp if r["policy"] == "a")
    # the shared seed effect hides a 3 ms shift from unpaired tests, not from paired ones
    assert a["paired_p"] < 1e-4 < 0.05 < a["welch_p"]
    assert a["n"] == a["n_ref"] == a["n_pairs"] == 8
    assert a["diff_ci95_low"] < 3.0 < a["diff_ci95_high"]


def test_statistics_do_not_depend_on_the_order_the_runs_arrived() -> None:
    # a sample whose mean and SD differ in the last bit when summed in reverse order: parallel
    # runs finish in any order, and the tables must come out the same bit for bit
    x = [0.29871465337055964, 0.3136646347054968, 0.29334805326513386, 0.3035151007009302,
         0.3090347018165181, 0.30094012297760875, 0.2925650075064619, 0.2907827462374158,
         0.2954227417433266, 0.3022019512347005]  # fmt: skip
    assert np.std(x, ddof=1) != np.std(x[::-1], ddof=1)  # the premise
    assert stats.describe(x) == stats.describe(x[::-1])
    ref = {s: 0.3 + 0.001 * s for s in range(10)}
    fwd, rev = dict(enumerate(x)), dict(reversed(list(enumerate(x))))
    assert stats.compare(fwd, ref) == stats.compare(rev, ref)
