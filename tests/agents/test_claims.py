"""The benchmark's claims table (agents.benchmark.claims) on constructed evaluation runs."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from agents.benchmark import claims, leaderboard
from agents.evaluation import stats
from kisim.core.config import load_scenario
from kisim.core.rundir import RunRecord

ROOT = Path(__file__).resolve().parents[2]


def _records(policy: str, cost: float, slo: float, reward: float, noise: float
             ) -> list[RunRecord]:  # fmt: skip
    rng = np.random.default_rng(zlib.crc32(policy.encode()))
    out = []
    for seed in range(10):
        e = rng.normal(0, noise, 3)
        s = {"cost_per_million": cost + e[0], "slo_attainment": slo + e[1] / 100,
             "p95_ms": 50.0, "episode_reward": reward + e[2]}  # fmt: skip
        out.append(RunRecord(policy, "schedule", seed, Path("."), s))
    return out


@pytest.fixture(scope="module")
def board():
    sc = load_scenario(ROOT / "configs" / "scenarios" / "suite" / "cpu-fleet.yaml")
    roles = {"hpa:0.6:0": "tuned hpa", "kpa:0.7:30": "tuned kpa", "oracle": "oracle",
             "ppo:a.zip": "extra", "ppo:b.zip": "extra", "ppo:c.zip": "extra"}  # fmt: skip
    recs = (_records("hpa:0.6:0", 0.30, 0.99, -5.0, 0.001)
            + _records("kpa:0.7:30", 0.25, 0.97, -4.0, 0.001)  # the best rule
            + _records("oracle", 0.22, 0.98, -3.0, 0.001)
            + _records("ppo:a.zip", 0.23, 0.97, -3.3, 0.001)  # cheaper, same SLO
            + _records("ppo:b.zip", 0.23, 0.90, -3.5, 0.001)  # cheaper, SLO much worse
            + _records("ppo:c.zip", 0.25, 0.97, -4.0, 0.001))  # the same as the best rule
    return leaderboard.build("cpu-fleet", "", sc, recs, roles,
                             {"hpa": "hpa:0.6:0", "kpa": "kpa:0.7:30"})  # fmt: skip


def test_verdict_rules():
    assert claims.verdict((-0.1, 0.001), (0.0, 0.9)) == (True, "cheaper, SLO no worse")
    assert claims.verdict((-0.1, 0.001), (-0.02, 0.01)) == (False, "")  # SLO significantly worse
    assert claims.verdict((0.01, 0.4), (0.02, 0.01)) == (True, "better SLO, cost no higher")
    assert claims.verdict((0.05, 0.01), (0.02, 0.01)) == (False, "")  # dearer
    assert claims.verdict((-0.1, 0.2), (0.0, 0.9)) == (False, "")  # not significant


def test_claims_against_best_rule_and_hpa(board):
    assert board.best_rule == "kpa:0.7:30"
    got = {(c.policy, c.reference): c for c in claims.claims(board)}
    assert set(got) == {(p, r) for p in ("ppo:a.zip", "ppo:b.zip", "ppo:c.zip")
                        for r in ("best rule", "tuned hpa")}  # fmt: skip
    a = got["ppo:a.zip", "best rule"]
    assert a.beats and a.how == "cheaper, SLO no worse"
    assert a.cost_diff == pytest.approx(-0.02, abs=0.002)
    assert a.margin_share == pytest.approx((-3.3 + 5.0) / (-3.0 + 5.0), abs=0.01)
    assert not got["ppo:b.zip", "best rule"].beats
    assert not got["ppo:c.zip", "best rule"].beats
    # c is 0.05 cheaper than tuned HPA but 2 pp worse on SLO attainment, both significant
    c = got["ppo:c.zip", "tuned hpa"]
    assert not c.beats and c.cost_p < 0.05 and c.slo_p < 0.05 and c.slo_diff < 0


def test_claims_carry_the_paired_differences_interval(board):
    """The interval is the paired t interval over the 10 seeds: diff +- t(0.975, 9) sd / sqrt(10),
    computed here from the records themselves."""
    got = {(c.policy, c.reference): c for c in claims.claims(board)}
    seeds = {e.policy: e.seeds for e in board.entries}
    for (policy, ref), c in got.items():
        against = seeds["kpa:0.7:30" if ref == "best rule" else "hpa:0.6:0"]
        for m, lo, hi, diff in (("cost_per_mreq", c.cost_ci_low, c.cost_ci_high, c.cost_diff),
                                ("slo_attainment", c.slo_ci_low, c.slo_ci_high, c.slo_diff)):
            d = np.array([seeds[policy][m][k] - against[m][k] for k in range(10)])
            half = 2.2621571628 * d.std(ddof=1) / np.sqrt(10)  # t quantile, 9 degrees of freedom
            assert (lo, hi) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-9)
            assert lo < diff < hi
    assert got["ppo:b.zip", "best rule"].slo_ci_high < -0.05  # 7 pp worse: far outside any margin


def test_room_and_markdown(board):
    ok, d, p = claims.room(board)
    assert ok and d == pytest.approx(1.0, abs=0.01) and p < 0.05
    text = "\n".join(claims.markdown([board]))
    assert "## Claims" in text and "`ppo:a.zip`" in text and "**yes**" in text
    assert "95 % CI" in text


def test_a_rule_told_the_schedule_adds_the_reactive_bar():
    """Where the best rule is told the load curve, each policy is also judged against the best
    reactive rule, with Holm over the PPO policies (two here: each p at most doubled); b is
    dearer than KPA."""
    sc = load_scenario(ROOT / "configs" / "scenarios" / "suite" / "cpu-fleet.yaml")
    roles = {"hpa:0.6:0": "tuned hpa", "kpa:0.7:30": "tuned kpa", "cron-kpa:1:10": "tuned cron-kpa",
             "ppo:a.zip": "extra", "ppo:b.zip": "extra"}  # fmt: skip
    recs = (_records("hpa:0.6:0", 0.30, 0.99, -5.0, 0.001)
            + _records("kpa:0.7:30", 0.25, 0.97, -4.0, 0.001)
            + _records("cron-kpa:1:10", 0.21, 0.99, -3.0, 0.001)  # told: the best rule
            + _records("ppo:a.zip", 0.23, 0.97, -3.3, 0.001)  # beats KPA, not cron-kpa
            + _records("ppo:b.zip", 0.26, 0.97, -4.2, 0.003))  # fmt: skip
    tuned = {"hpa": "hpa:0.6:0", "kpa": "kpa:0.7:30", "cron-kpa": "cron-kpa:1:10"}
    b = leaderboard.build("cpu-fleet", "", sc, recs, roles, tuned)
    assert (b.best_rule, b.best_reactive) == ("cron-kpa:1:10", "kpa:0.7:30")
    got = {(c.policy, c.reference): c for c in claims.claims(b)}
    assert set(got) == {(p, r) for p in ("ppo:a.zip", "ppo:b.zip")
                        for r in ("best rule", "best reactive rule", "tuned hpa")}  # fmt: skip
    assert not got["ppo:a.zip", "best rule"].beats
    a = got["ppo:a.zip", "best reactive rule"]
    assert a.beats and a.against == "kpa:0.7:30" and a.how == "cheaper, SLO no worse"
    assert not got["ppo:b.zip", "best reactive rule"].beats
    seeds = {e.policy: e.seeds for e in b.entries}
    raw = {p: stats.compare(seeds[p]["cost_per_mreq"], seeds["kpa:0.7:30"]["cost_per_mreq"])
           ["paired_p"] for p in ("ppo:a.zip", "ppo:b.zip")}  # fmt: skip
    want = stats.holm([raw["ppo:a.zip"], raw["ppo:b.zip"]])
    assert [got[p, "best reactive rule"].cost_p for p in raw] == pytest.approx(list(want))
    _, body = leaderboard._table(b)  # the scenario's table names both references
    names = [row[0] for row in body]
    assert "cron-kpa:1:10 **(best rule)**" in names and "kpa:0.7:30 (best reactive rule)" in names
