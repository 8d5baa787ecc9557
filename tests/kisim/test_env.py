"""KisimEnv: checkers, seeding and determinism, presets doing what they say, reward terms."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest

from kisim.core.config import load_scenario, override, resolved_json
from kisim.core.errors import ConfigError, KisimError
from kisim.core.window import Window
from kisim.env.context import EnvState, build_context
from kisim.env.environment import DEFAULT_SCENARIO, KisimEnv
from kisim.env.observation import LATENCY_CAP, OBSERVATIONS, load_trend, load_variance
from kisim.env.rewards import REWARDS, Reference, efficiency, stability

SPIKE = {"name": "spike", "params": {"base": 60, "peak": 400, "start_s": 30, "rise_s": 5,
                                     "hold_s": 50, "fall_s": 5}}  # fmt: skip


@pytest.fixture(scope="module")
def base():
    return load_scenario(DEFAULT_SCENARIO)


@pytest.fixture(scope="module")
def short(base):
    """The default scenario, a spike early on, 150 s (5 agent steps)."""
    return override(base, "test", **{"traffic.pattern": SPIKE, "duration_s": 150.0})


def window(**kw) -> Window:
    d = dict(t_start=0.0, t_end=30.0, load_level=100.0, offered=3000, served=3000, errors=0,
             throughput_rps=100.0, latency_mean_ms=30.0, latency_p50_ms=28.0, latency_p95_ms=50.0,
             latency_p99_ms=70.0, queue_wait_ms=2.0, slo_violations=0, cpu_util=0.3, mem_util=0.3,
             gpu_util=0.2, gpu_desired=1, gpu_ready=1, gpu_pending=0, cpu_desired=1, cpu_ready=1,
             cpu_pending=0, gpu_replica_s=30.0, cpu_replica_s=30.0, pending_pod_s=0.0,
             queue_length=0, mean_batch_size=1.2, placement="balanced")  # fmt: skip
    d.update(kw)
    return Window.from_dict(d)


def rollout(env: KisimEnv, seed: int, actions: list) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    out = [(obs.tolist(),)]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs.tolist(), r, term, trunc, repr(info["window"]), info["clamped"]))
        if trunc:
            break
    return out


# --------------------------------------------------------------------------- contracts


@pytest.mark.parametrize("action", ["replicas", "resources", "hpa-target", "none"])
def test_gymnasium_env_checker(short, action):
    from gymnasium.utils.env_checker import check_env

    env = KisimEnv(short, action=action)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings are failures here
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("kw", [{}, {"observation": "extended", "reward": "qos"}])
def test_sb3_env_checker(short, kw):
    sb3 = pytest.importorskip("stable_baselines3.common.env_checker")
    env = KisimEnv(short, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3.check_env(env, warn=True)


def test_registered_env_is_the_default_scenario_on_the_twin():
    import kisim  # noqa: F401  (registers)

    env = gym.make("kisim/Autoscale-v0")
    u = env.unwrapped
    assert isinstance(u, KisimEnv)
    assert u.scenario.name == "default" and u.scenario.controller.name == "external"
    assert env.action_space == gym.spaces.MultiDiscrete([5, 5, 3])
    assert env.observation_space.shape == (10,)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["window"] is None
    env.close()


def test_same_seed_same_actions_identical_rollouts(short):
    rng = np.random.default_rng(5)
    acts = [rng.integers(0, [5, 5, 3]) for _ in range(5)]
    a = rollout(KisimEnv(short), 11, acts)
    b = rollout(KisimEnv(short), 11, acts)
    c = rollout(KisimEnv(short), 12, acts)
    assert a == b
    assert a != c


def test_seeding_goes_through_reset(short):
    env = KisimEnv(short)
    _, info = env.reset(seed=7)
    assert info["twin_seed"] == 7  # CRN with `kisim simulate --seed 7` and in-cluster runs
    seeds = [env.reset()[1]["twin_seed"] for _ in range(3)]
    env2 = KisimEnv(short)
    env2.reset(seed=7)
    assert seeds == [env2.reset()[1]["twin_seed"] for _ in range(3)]
    assert len(set(seeds)) == 3


def test_patterns_are_drawn_or_chosen(short):
    env = KisimEnv(short, patterns=["ramp", "periodic", "random"])
    env.reset(seed=0)
    drawn = {env.reset()[1]["pattern"] for _ in range(12)}
    assert drawn == {"ramp", "periodic", "random"}
    assert env.reset(options={"pattern": "random"})[1]["pattern"] == "random"
    with pytest.raises(KisimError, match="not one of"):
        env.reset(options={"pattern": "spike"})


def test_episode_is_truncated_at_the_duration(short):
    env = KisimEnv(override(short, "t", duration_s=100.0))  # 30 + 30 + 30 + 10 s
    env.reset(seed=0)
    flags, lengths = [], []
    for _ in range(4):
        _, _, term, trunc, info = env.step(env.hold())
        flags.append((term, trunc))
        lengths.append(info["window"].duration)
    assert flags == [(False, False)] * 3 + [(False, True)]
    assert lengths == pytest.approx([30, 30, 30, 10])
    with pytest.raises(KisimError, match="over"):
        env.step(env.hold())


def test_bad_presets_fail_with_the_field_named(short):
    with pytest.raises(ConfigError, match="env.action: unknown preset 'jump'"):
        KisimEnv(short, action="jump")
    with pytest.raises(ConfigError, match="env.reward_weights: 'speed' is not a term of"):
        KisimEnv(short, reward_weights={"speed": 1.0})


# --------------------------------------------------------------------------- actions


def test_replicas_action_moves_and_clamps(short):
    env = KisimEnv(short)
    env.reset(seed=0)  # gpu 1 (max 2), cpu 1 (min 0, max 8), balanced
    _, _, _, _, info = env.step(np.array([4, 0, 0]))  # gpu +2, cpu -2, prefer-gpu
    w = info["window"]
    assert info["clamped"] == {"gpu.replicas": "3 -> 2 (max_replicas)",
                               "cpu.replicas": "-1 -> 0 (min_replicas)"}  # fmt: skip
    assert (w.gpu_desired, w.cpu_desired, w.placement) == (2, 0, "prefer-gpu")
    assert w.gpu_pending == 1  # one GPU in the cluster: the second GPU pod stays Pending
    assert info["applied"].replicas == {"gpu": 2, "cpu": 0}
    _, _, _, _, info = env.step(np.array([2, 4, 2]))  # cpu +2, prefer-cpu
    w = info["window"]
    assert (w.cpu_desired, w.placement, info["clamped"]) == (2, "prefer-cpu", {})
    assert w.cpu_ready == 2  # started within the 30 s step (start-up ~ 10-15 s)
    assert env.state.desired == {"gpu": 2, "cpu": 2}


def test_replica_steps_set_the_pods_each_rung_moves(short):
    sc = override(short, "test", **{"env.replica_steps": [2, 5]})
    env = KisimEnv(sc)
    assert env.ctx.rungs == (-5, -2, 0, 2, 5) and env.action_space.nvec.tolist() == [5, 5, 3]
    assert '"replica_steps"' in resolved_json(sc)
    assert '"replica_steps"' not in resolved_json(short)  # stored runs' fingerprints stand
    env.reset(seed=0)  # gpu 1 (max 2), cpu 1 (min 0, max 8), balanced
    _, _, _, _, info = env.step(np.array([2, 4, 1]))  # cpu +5
    assert env.state.desired == {"gpu": 1, "cpu": 6} and info["clamped"] == {}
    _, _, _, _, info = env.step(np.array([2, 3, 1]))  # cpu +2: 8 is the most
    assert env.state.desired["cpu"] == 8 and info["clamped"] == {}
    _, _, _, _, info = env.step(np.array([2, 1, 1]))  # cpu -2
    assert env.state.desired["cpu"] == 6
    assert env.step(env.hold())[4]["window"].cpu_desired == 6
    with pytest.raises(ConfigError, match="replica_steps: the small move .3. must be smaller"):
        override(short, "test", **{"env.replica_steps": [3, 3]})
    with pytest.raises(ConfigError, match="env.replica_steps"):
        override(short, "test", **{"env.replica_steps": [0, 2]})


def test_resources_action_changes_templates_and_rolls_pods(short):
    from twin.rollout import pods_by_template

    env = KisimEnv(short, action="resources")
    env.reset(seed=0)
    a = env.hold()
    a[4:8] = [2, 2, 2, 2]  # cpu pool: +0.5 core, +512 MiB, batch 4 -> 8, 2 instances
    a[2] = 0  # gpu pool: batch 16 -> 8
    _, _, _, _, info = env.step(a)
    assert info["applied"] is not None and info["reward_terms"]["stability"] == -1.0
    t = env.state.templates
    c = t["cpu"]
    assert (c.cpu, c.memory_gib, c.max_batch_size, c.instances) == (2.5, 4.5, 8, 2)
    assert t["gpu"].max_batch_size == 8
    env.step(env.hold())
    pods = env.backend.pods
    assert set(pods_by_template(pods, "cpu")) == {(2.5, 4.5, 8, 2)}  # old pods replaced
    assert pods_by_template(pods, "gpu") == {(2.0, 4.0, 8, 1): 1}
    env.reset(seed=0)
    env.state.templates["cpu"].cpu = 8.0  # at the bound (env.resources.cpu_max)
    a = env.hold()
    a[4] = 2
    _, _, _, _, info = env.step(a)
    assert info["clamped"] == {"cpu.cpu": "8.5 -> 8 (cpu_max)"} and info["applied"] is None


def test_rollout_strategies_follow_the_manifests(short):
    """GPU: delete first (maxSurge 0); CPU: surge first (maxUnavailable 0)."""
    from kisim.core.backend import Action, PoolSetting
    from twin.backend import TwinBackend
    from twin.pods import Phase

    sc = override(short, "t", **{"controller.name": "external"})
    b = TwinBackend()
    b.reset(sc, 0)
    b.advance(5.0)
    b.apply(Action(pools={"gpu": PoolSetting(cpu=3.0), "cpu": PoolSetting(cpu=3.0)}))
    gpu = b.pods.pods["gpu"]
    assert [p.deleting for p in gpu] == [True, False]  # old one terminating at once
    cpu = b.pods.active("cpu")
    assert len(cpu) == 2 and cpu[0].phase is Phase.READY  # the old one serves meanwhile
    w = b.advance(60.0)
    assert (w.gpu_ready, w.cpu_ready) == (1, 1)
    assert all(p.cfg.resources.cpu == 3.0 for pool in ("gpu", "cpu") for p in b.pods.active(pool))
    assert b.rollouts.active == set()


def test_hpa_target_action_steers_the_in_cluster_hpa(base, short):
    static = override(short, "t", **{"controller.name": "static"})
    env = KisimEnv(static, action="hpa-target")  # the preset brings its HPA
    assert env.scenario.controller.name == "hpa"
    env.reset(seed=0)
    assert env.action_space == gym.spaces.Discrete(5)
    _, _, _, _, info = env.step(4)  # +2 rungs of 0.05
    assert env.state.hpa_target == pytest.approx(0.7)
    assert {h.target_pct for h in env.backend.hpa.hpas.values()} == {70}
    assert info["applied"] is not None
    for _ in range(3):
        _, _, _, _, info = env.step(4)
    assert env.state.hpa_target == pytest.approx(0.95)
    assert info["clamped"] == {"hpa_target": "1 -> 0.95 (max)"}


def test_none_action_keeps_the_scenarios_controller(short):
    env = KisimEnv(short, action="none")
    assert env.scenario.controller.name == "hpa"
    env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    assert info["applied"] is None


def test_recorded_timeline_does_not_change_the_agents_view(short):
    acts = [np.array([3, 3, 1]), np.array([2, 2, 0]), np.array([1, 4, 1])] * 2
    plain = KisimEnv(short)
    rec = KisimEnv(short, record_window_s=15.0)
    plain.reset(seed=3)
    rec.reset(seed=3)
    timeline = []
    for a in acts:
        o1, r1, _, t1, i1 = plain.step(a)
        o2, r2, _, t2, i2 = rec.step(a)
        w1, w2 = i1["window"], i2["window"]
        for f in ("offered", "served", "errors", "cpu_util", "gpu_desired", "cpu_ready",
                  "queue_length", "slo_violations", "placement"):  # fmt: skip
            assert repr(getattr(w1, f)) == repr(getattr(w2, f)), f  # repr: NaN equals NaN
        for f in ("latency_mean_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
                  "queue_wait_ms", "cpu_replica_s", "mean_batch_size"):  # fmt: skip
            assert getattr(w1, f) == pytest.approx(getattr(w2, f), rel=1e-12, nan_ok=True), f
        assert r1 == pytest.approx(r2, rel=1e-9, abs=1e-12)
        np.testing.assert_allclose(o1, o2, rtol=1e-6)
        timeline += i2["timeline"]
        if t1:
            break
    assert [w.duration for w in timeline] == [15.0] * 10
    assert sum(w.served for w in timeline) == plain.backend.latencies().size


# --------------------------------------------------------------------------- observation


def test_observation_nans_become_documented_values(short):
    ctx = build_context(short)
    obs = OBSERVATIONS["default"](ctx)
    st = EnvState.initial(ctx)
    idle = window(offered=0, served=0, throughput_rps=0.0, latency_mean_ms=math.nan,
                  latency_p50_ms=math.nan, latency_p95_ms=math.nan, latency_p99_ms=math.nan,
                  cpu_util=math.nan, mem_util=math.nan, gpu_util=math.nan)  # fmt: skip
    o = obs.observe(idle, st)
    assert np.all(np.isfinite(o)) and obs.space.contains(o)
    assert o[:5].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]
    stalled = replace(idle, offered=500, queue_length=300)
    assert obs.observe(stalled, st)[3] == LATENCY_CAP  # nothing completed under load: worst
    slow = window(latency_p95_ms=1e6, throughput_rps=1e9, cpu_util=3.0)
    o = obs.observe(slow, st)
    assert obs.space.contains(o) and o[3] == LATENCY_CAP and o[0] == 1.0
    ext = OBSERVATIONS["extended"](ctx)
    assert ext.space.contains(ext.observe(stalled, st))
    assert ext.space.contains(ext.observe(None, st))


def test_load_trend_and_variance():
    assert load_trend([100.0], 400.0) == 0.0
    assert load_trend([100, 150, 200, 250], 400.0) == pytest.approx(150 / 400)
    assert load_trend([250, 200, 150, 100], 400.0) == pytest.approx(-150 / 400)
    assert load_trend([0, 1000], 400.0) == 1.0
    assert load_variance([100, 100, 100]) == 0.0
    assert 0 < load_variance([50, 150]) <= 1.0
    assert load_variance([0.0, 0.0]) == 0.0


# --------------------------------------------------------------------------- rewards


def test_reward_terms_have_the_documented_signs(short):
    ctx = build_context(short)
    st = EnvState.initial(ctx)
    ref = Reference(p95_ms=100.0, throughput_rps=100.0, gpu_util=0.0)
    weighted = REWARDS["weighted"](ctx)
    _, fast = weighted(window(latency_p95_ms=50.0), ref, 0, st)
    _, slow = weighted(window(latency_p95_ms=300.0), ref, 0, st)
    assert fast["latency"] == pytest.approx(0.5) and slow["latency"] == -1.0
    _, short_tp = weighted(window(throughput_rps=60.0), ref, 0, st)
    assert short_tp["throughput"] == pytest.approx(-0.4)
    _, calm = weighted(window(), ref, 0, st)
    _, busy = weighted(window(), ref, 3, st)
    assert calm["stability"] == 0.0 and busy["stability"] == pytest.approx(-0.75)
    assert stability(100) == -1.0
    big = window(cpu_replica_s=8 * 30.0, gpu_replica_s=2 * 30.0)
    assert efficiency(window(), ctx, st) > efficiency(big, ctx, st) == 0.0
    qos = REWARDS["qos"](ctx)
    _, good = qos(window(gpu_util=0.8), ref, 0, st)
    _, bad = qos(window(latency_p95_ms=500.0, slo_violations=600), ref, 0, st)
    assert good["gpu_util"] == pytest.approx(0.8) and good["latency"] == pytest.approx(-0.25)
    assert bad["latency"] == -1.0 and bad["qos"] == pytest.approx(-0.2)
    for preset in (weighted, qos):
        lo, hi = preset.bounds
        for w in (window(), window(latency_p95_ms=math.nan, served=0), big,
                  window(throughput_rps=1e6, gpu_util=1.0)):  # fmt: skip
            r, terms = preset(w, ref, 9, st)
            assert lo <= r <= hi
            assert r == pytest.approx(sum(preset.weights[k] * v for k, v in terms.items()))


def test_weights_come_from_the_scenario(short):
    env = KisimEnv(short, reward="qos", reward_weights={"qos": 1.0})
    assert env._rew.weights == {"gpu_util": 0.2, "efficiency": 0.2, "latency": 0.3, "qos": 1.0}


def test_static_baseline_scores_the_static_run_as_no_improvement(short):
    sc = override(short, "t", **{"controller.name": "static"})
    env = KisimEnv(sc, action="none", reward_baseline="static")
    env.reset(seed=4)
    for _ in range(5):
        _, _, _, trunc, info = env.step(0)
        assert info["reward_terms"]["latency"] == 0.0
        assert info["reward_terms"]["throughput"] == pytest.approx(0.0, abs=1e-12)
    assert trunc
