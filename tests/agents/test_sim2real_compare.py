"""agents.sim2real.compare on small SYNTHETIC run tables (made up here, not measured): gaps,
intervals, Kendall's tau-b against hand-counted pairs, verdict agreement, the issue-14 'beats'
criterion."""

from __future__ import annotations

import math

import pytest

from agents.sim2real import compare as cmp

SEEDS = range(5)
E = (0.01, -0.02, 0.015, -0.005, 0.0)  # seed noise, sums to 0


def cells(**cols: dict[str, list[float]]) -> dict:
    """Synthetic table: policy -> metric -> per-seed values, on workload 'w'."""
    return {(p, "w"): {s: {m: v[s] for m, v in ms.items()} for s in SEEDS}
            for p, ms in cols.items()}  # fmt: skip


def test_gap_pct_signs_and_undefined() -> None:
    assert cmp.gap_pct(110.0, 100.0) == pytest.approx(10.0)
    assert cmp.gap_pct(90.0, 100.0) == pytest.approx(-10.0)
    assert cmp.gap_pct(-90.0, -100.0) == pytest.approx(10.0)  # twin above a negative reward
    assert math.isnan(cmp.gap_pct(1.0, 0.0))
    assert math.isnan(cmp.gap_pct(math.nan, 1.0))


def test_side_by_side_interval_and_inside_flag() -> None:
    twin = {("a", "w"): {0: {"m": 1.0}, 1: {"m": 2.0}, 2: {"m": 3.0}}}
    real_in = {("a", "w"): {0: {"m": 2.5}, 1: {"m": 2.5}}}
    real_out = {("a", "w"): {0: {"m": 5.0}, 1: {"m": 5.0}}}
    (r,) = cmp.side_by_side(twin, real_in, ["a"], ["w"], ["m"])
    half = 4.303 * 1.0 / math.sqrt(3)  # t_{0.975, 2} = 4.303 (tables), sd = 1
    assert r["twin_mean"] == 2.0 and r["twin_n"] == 3 and r["real_n"] == 2
    ci = (r["twin_ci95_low"], r["twin_ci95_high"])
    assert ci == pytest.approx((2 - half, 2 + half), abs=1e-3)
    assert r["gap_pct"] == pytest.approx(100 * (2.0 - 2.5) / 2.5)
    assert r["real_in_twin_ci"] is True
    (r,) = cmp.side_by_side(twin, real_out, ["a"], ["w"], ["m"])
    assert r["real_in_twin_ci"] is False and r["gap_pct"] == pytest.approx(-60.0)


def test_kendall_tau_b_on_known_rankings() -> None:
    assert cmp.kendall([1, 2, 3, 4], [10, 20, 30, 40])[0] == pytest.approx(1.0)
    assert cmp.kendall([1, 2, 3, 4], [40, 30, 20, 10])[0] == pytest.approx(-1.0)
    # one adjacent swap among 4: 5 concordant, 1 discordant of 6 pairs
    assert cmp.kendall([1, 2, 3, 4], [1, 3, 2, 4])[0] == pytest.approx(4 / 6)
    # a tie in the twin's ranking: tau-b = (nc - nd) / sqrt((n0 - n1)(n0 - n2)) = 5 / sqrt(5 * 6)
    tau, p, n = cmp.kendall([1, 1, 2, 3], [1, 2, 3, 4])
    assert tau == pytest.approx(5 / math.sqrt(30)) and n == 4 and 0 < p <= 1
    # a policy without a real mean is left out; a fully tied side has no ranking
    assert cmp.kendall([1, 2, 3], [1, math.nan, 3])[2] == 2
    assert math.isnan(cmp.kendall([1, 2, 3], [5, 5, 5])[0])
    assert math.isnan(cmp.kendall([1], [1])[0])


def test_kendall_table_ranks_lower_is_better_metrics_ascending() -> None:
    t = cells(a={"p95_ms": [50 + e for e in E]}, b={"p95_ms": [80 + e for e in E]},
              c={"p95_ms": [200 + e for e in E]})  # fmt: skip
    r = cells(a={"p95_ms": [60 + e for e in E]}, b={"p95_ms": [300 + e for e in E]},
              c={"p95_ms": [250 + e for e in E]})  # fmt: skip
    (row,) = cmp.kendall_table(t, r, ["a", "b", "c"], ["w"], ["p95_ms"])
    assert row["twin_ranking"] == "a > b > c" and row["real_ranking"] == "a > c > b"
    assert row["tau"] == pytest.approx(1 / 3)  # 2 concordant, 1 discordant


def test_verdicts_hold_reverse_or_vanish() -> None:
    slo = cmp.Metric("slo_attainment", "SLO", True)
    p95 = cmp.Metric("p95_ms", "p95", False)
    twin = cells(a={"slo_attainment": [0.9 + e for e in E], "p95_ms": [50 + 10 * e for e in E]},
                 b={"slo_attainment": [0.8 + e / 2 for e in E], "p95_ms": [90 + 5 * e for e in E]})
    real = cells(a={"slo_attainment": [0.8 + e / 2 for e in E], "p95_ms": [70 + e for e in E]},
                 b={"slo_attainment": [0.9 + e for e in E], "p95_ms": [70 - e for e in E]})
    rows = {r["metric"]: r for r in cmp.verdict_table(twin, real, ["a", "b"], ["w"], [slo, p95])}
    assert rows["slo_attainment"]["twin_winner"] == "a"
    assert rows["slo_attainment"]["real_winner"] == "b"
    assert rows["slo_attainment"]["holds"] == "reversed"
    assert rows["slo_attainment"]["agree"] is False
    assert rows["p95_ms"]["twin_winner"] == "a"  # lower p95 wins
    assert rows["p95_ms"]["real_winner"] == ""  # mean difference 0: p = 1
    assert rows["p95_ms"]["holds"] == "no" and rows["p95_ms"]["real_p_holm"] == pytest.approx(1.0)
    same = cmp.verdict_table(twin, twin, ["a", "b"], ["w"], [slo])[0]
    assert same["holds"] == "yes" and same["agree"] is True


def test_verdicts_are_holm_adjusted_within_a_family() -> None:
    m = cmp.Metric("m", "m", True)
    t = cells(a={"m": [1 + e for e in E]}, b={"m": [1.02 + e / 3 for e in E]},
              c={"m": [5 + e / 2 for e in E]})  # fmt: skip
    fam = cmp.verdict_family(t, ["a", "b", "c"], "w", m)
    assert set(fam) == {("a", "b"), ("a", "c"), ("b", "c")}
    from agents.evaluation import stats

    raw = [stats.compare({s: t[(x, "w")][s]["m"] for s in SEEDS},
                         {s: t[(y, "w")][s]["m"] for s in SEEDS})["paired_p"]
           for x, y in fam]  # fmt: skip
    assert [p for _, p in fam.values()] == pytest.approx(list(stats.holm(raw)))
    assert fam[("a", "c")][0] == "c" and fam[("b", "c")][0] == "c"


def test_beats_criterion() -> None:
    base = {"slo_attainment": [0.8 + e for e in E], "replica_s": [300.0] * 5}
    better_slo = {"slo_attainment": [0.95 + e / 2 for e in E], "replica_s": [300.0] * 5}
    cheaper_but_worse = {"slo_attainment": [0.7 + e / 2 for e in E],
                         "replica_s": [200 + 10 * e for e in E]}  # fmt: skip
    cheaper_same_slo = {"slo_attainment": [0.8 - e for e in E],
                        "replica_s": [200 + 100 * e for e in E]}  # fmt: skip
    c = cells(hpa=base, a=better_slo, b=cheaper_but_worse, d=cheaper_same_slo)
    assert cmp.beats(c, "a", "hpa", "w")[0] is True  # equal replica-s: no worse
    assert cmp.beats(c, "b", "hpa", "w")[0] is False  # fewer replica-s, significantly worse SLO
    assert cmp.beats(c, "d", "hpa", "w")[0] is True  # fewer replica-s, SLO not worse (p = 1)
    assert cmp.beats(c, "hpa", "a", "w")[0] is False
    assert "replica-s" in cmp.beats(c, "a", "hpa", "w")[1]


def test_model_pairs_section_compares_every_ppo_pair_on_both_sides() -> None:
    from agents.sim2real.report import _model_pairs

    doc = {"policies": ["hpa", "ppo:/x/ppo/best_model.zip", "ppo:/x/ppo-ft/model.zip"],
           "workloads": ["w"]}
    twin = cells(**{"ppo:/x/ppo/best_model.zip": {"episode_reward": [-5 + e for e in E]},
                    "ppo:/x/ppo-ft/model.zip": {"episode_reward": [-5 + e for e in E]}})
    real = cells(**{"ppo:/x/ppo/best_model.zip": {"episode_reward": [-7 + e for e in E]},
                    "ppo:/x/ppo-ft/model.zip": {"episode_reward": [-6 + e / 2 for e in E]}})
    lines = _model_pairs(doc, twin, real)
    row = next(x for x in lines if "episode_reward" in x)
    assert "ppo:ppo/best_model → ppo:ppo-ft/model" in row
    assert row.endswith("| 0 (—) | 1 (<0.001) |")  # twin: no change; real: +1, significant
    assert _model_pairs({"policies": ["hpa", "ppo:/a.zip"], "workloads": ["w"]}, twin, real) == []
