"""Money: prices per pod-hour, Window and summary cost, SLO attainment, the `cost` reward."""

from __future__ import annotations

import math

import pytest

from kisim.core.config import load_scenario, override, with_pattern
from kisim.core.errors import ConfigError
from kisim.core.paths import config_path
from kisim.core.prices import DEFAULT_GPU_HOUR, Prices, pool_rates
from kisim.core.summary import money_keys, p95_attainment, summary_keys
from kisim.core.window import Latencies, PoolReplicas, Utilisation, Window
from kisim.env.context import mean_demand
from kisim.env.environment import KisimEnv
from kisim.env.episode import run_windows, twin_backend

THREE = config_path("scenarios", "three-pools.yaml")


def test_default_prices_are_the_instance_list_prices() -> None:
    p = Prices()
    # a pod that reserves a whole g5 / g4dn / g6 xlarge costs the instance's list price
    assert p.pod_hour("a10g", 4, 16, 1) == pytest.approx(1.006)
    assert p.pod_hour("t4", 4, 16, 1) == pytest.approx(0.526)
    assert p.pod_hour("l4", 4, 16, 1) == pytest.approx(0.8048)
    assert p.pod_hour("anything", 2, 4, 0) == pytest.approx(0.096)  # 2 cores of m6i
    assert "check before relying" in p.provenance and "2024" in p.provenance


def test_scenario_prices_merge_over_the_defaults_and_are_validated(tmp_path) -> None:
    sc = load_scenario(THREE)
    assert pool_rates(sc) == pytest.approx({"a10g": 0.814 + 0.096, "t4": 0.334 + 0.096,
                                            "cpu": 0.096})  # fmt: skip
    sc2 = override(sc, "test", **{"prices.gpu_hour": {"t4": 0.2}})
    assert sc2.prices.gpu_hour["t4"] == 0.2
    assert sc2.prices.gpu_hour["a10g"] == DEFAULT_GPU_HOUR["a10g"]
    f = tmp_path / "s.yaml"
    f.write_text(f"extends: {THREE}\nprices: {{core_hour: -1}}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml: prices\.core_hour: "):
        load_scenario(f)


def test_windows_and_summaries_carry_cost() -> None:
    sc = override(load_scenario(THREE), "test", duration_s=120.0)
    ep = run_windows(twin_backend(), sc, 3)
    rates = pool_rates(sc)
    for w in ep.windows:
        for p, r in w.pools.items():
            assert r.cost == pytest.approx(r.replica_s * rates[p] / 3600)
        assert w.cost_total == pytest.approx(sum(r.cost for r in w.pools.values()))
        row = w.as_dict()
        assert Window.from_dict(row) == w and "a10g_cost" in row
    s = ep.summary
    assert list(s) == list(summary_keys(list(sc.pool_names)))
    assert set(money_keys(["a10g", "t4", "cpu"])) <= set(s)
    assert s["cost"] == pytest.approx(sum(s[f"{p}_cost"] for p in sc.pool_names))
    assert s["cost_per_million"] == pytest.approx(s["cost"] / s["served"] * 1e6)
    assert 0 <= s["slo_attainment"] <= 1 and 0 <= s["p95_attainment"] <= 1


def _w(p95: float, offered: int = 10, served: int = 10, errors: int = 0) -> Window:
    return Window.measured(t_start=0, t_end=15, load_level=1, offered=offered, served=served,
                           errors=errors, latency_ms=Latencies(p95, p95, p95, p95), slow=0,
                           queue_wait_ms=0, util=Utilisation(0, 0, 0),
                           replicas={"cpu": PoolReplicas(1, 1, 0)}, replica_s={"cpu": 15.0},
                           pending_pod_s=0, queue_length=0, mean_batch_size=1,
                           placement="balanced")  # fmt: skip


def test_p95_attainment_counts_windows() -> None:
    ws = [_w(50), _w(150), _w(math.nan, offered=5, served=0),  # stalled: a miss
          _w(math.nan, offered=0, served=0),                    # no load: left out
          _w(50, served=90, errors=10)]                         # 10 % failed: a miss
    assert p95_attainment(ws, 100) == pytest.approx(1 / 4)
    assert math.isnan(p95_attainment([_w(math.nan, offered=0, served=0)], 100))
    assert math.isnan(_w(50).cpu_cost)  # a backend given no prices reports no cost


def test_cost_reward_is_money_and_slo() -> None:
    env = KisimEnv(THREE, reward="cost", step_s=30.0)
    assert env._rew.bounds == (-1.0, 0.0)
    env.reset(seed=0)
    _, r, _, _, info = env.step(env.hold())
    t = info["reward_terms"]
    assert set(t) == {"cost", "slo"}
    ctx = env.ctx
    w = info["window"]
    money = sum(ctx.money_rates[p] * w.pools[p].replica_s for p in ctx.pools) / w.duration
    assert -t["cost"] == pytest.approx(money / ctx.money_max)
    assert r == pytest.approx(0.25 * t["cost"] + 0.75 * t["slo"])


def _held_episode(env: KisimEnv, **reset: object) -> tuple[float, int]:
    """An episode holding the replicas under `cost_requests`: its summed SLO term and its
    misses; every step's reward is the weighted sum of its terms, its SLO term unclipped."""
    env.reset(**reset)
    slo, misses, done = 0.0, 0, False
    while not done:
        _, r, term, trunc, info = env.step(env.hold())
        t, w = info["reward_terms"], info["window"]
        assert r == pytest.approx(0.25 * t["cost"] + 0.75 * t["slo"])
        assert 0.0 <= -t["slo"] < 1.0
        slo, misses, done = slo - t["slo"], misses + w.slo_violations, term or trunc
    return slo, misses


def test_cost_requests_counts_every_miss_once_against_the_mean_step() -> None:
    """Summed over an episode, the per-request SLO term is the episode's misses over an
    average step's requests (nothing clipped when no step misses more than that)."""
    sc = override(load_scenario(config_path("scenarios", "suite", "cpu-fleet.yaml")), "test",
                  duration_s=300.0, **{"pools.cpu.replicas": 18})  # fmt: skip
    env = KisimEnv(sc, reward="cost_requests")
    ctx = env.ctx
    # the schedule's mean over step midpoints 5, 15, ..., 295 s (piecewise linear, by hand:
    # 400 -> 600 over 0-150 s, 600 to 200 s, 600 -> 1800 over 200-210 s, 1800 to 290 s,
    # 1800 -> 700 over 290-300 s)
    assert ctx.mean_demand_rps == pytest.approx(
        (sum(400 + 200 * (5 + 10 * i) / 150 for i in range(15)) + 600 * 5 + 1200
         + 1800 * 8 + 1250) / 30)  # fmt: skip
    slo, misses = _held_episode(env, seed=3)
    assert misses > 0
    assert slo * ctx.mean_demand_rps * ctx.step_s == pytest.approx(misses)


def test_cost_requests_counts_each_patterns_misses_against_its_own_mean_step() -> None:
    """Trained on several patterns, an episode's misses count against an average step of the
    episode's pattern: a ramp's quiet start must not be scored against the schedule's bursts."""
    sc = override(load_scenario(config_path("scenarios", "suite", "cpu-fleet.yaml")), "test",
                  duration_s=200.0, **{"pools.cpu.replicas": 2, "pools.cpu.min_replicas": 2,
                                       "pools.cpu.max_replicas": 2})  # fmt: skip
    env = KisimEnv(sc, reward="cost_requests", patterns=["schedule", "ramp"])
    means = {n: mean_demand(with_pattern(env.scenario, n)) for n in env.patterns}
    assert means["schedule"] == env.ctx.mean_demand_rps
    assert abs(means["ramp"] / means["schedule"] - 1) > 0.1  # the test tells them apart
    for name in env.patterns:
        slo, misses = _held_episode(env, seed=5, options={"pattern": name})
        assert misses > 0, name
        assert slo * means[name] * env.ctx.step_s == pytest.approx(misses), name
