"""Baselines, oracle and PPO: specs, short episodes, and the behaviour each one promises."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from agents.evaluation.policy_run import TwinEpisode, check_policies, run_policy
from agents.policies import POLICIES, make_policy
from agents.policies.kpa import PoolKPA
from kisim.core.config import load_scenario, override, resolved_json
from kisim.core.errors import KisimError
from kisim.core.rundir import read_summary, read_timeline
from kisim.env.environment import DEFAULT_SCENARIO, KisimEnv

SPIKE = {"name": "spike", "params": {"base": 60, "peak": 400, "start_s": 30, "rise_s": 5,
                                     "hold_s": 50, "fall_s": 5}}  # fmt: skip


@pytest.fixture(scope="module")
def short():
    """Default scenario, spike at 30-90 s, 120 s (4 agent steps, 8 timeline windows)."""
    return override(load_scenario(DEFAULT_SCENARIO), "test",
                    **{"traffic.pattern": SPIKE, "duration_s": 120.0})  # fmt: skip


@pytest.fixture(scope="module")
def cpu_only(short):
    """No GPU: the CPU pool alone meets the spike, so scaling has to happen."""
    return override(short, "test", **{"pools.gpu.replicas": 0, "pools.gpu.max_replicas": 0,
                                      "duration_s": 150.0})  # fmt: skip


# --------------------------------------------------------------------------- specs


def test_registry_and_specs():
    assert set(POLICIES) >= {"static", "static-gpu", "static-cpu", "hpa", "threshold", "kpa",
                             "oracle", "ppo"}  # fmt: skip
    check_policies(["hpa", "hpa:0.5", "static-cpu:4", "oracle:3", "kpa:0.5", "threshold"])
    assert make_policy("hpa:0.5").target == 0.5
    assert make_policy("oracle:3:replay").mode == "replay"


@pytest.mark.parametrize("spec, msg", [
    ("nope", "unknown policy 'nope' (known: static,"),
    ("hpa:2", "policy 'hpa:2': 2 must lie in (0, 1]"),
    ("hpa:x", "'x' is not a number"),
    ("static-cpu:0", "0 must lie in 1..1000"),
    ("threshold:0.5:0.2:2", "up_util 2 must lie in (0, 1]"),
    ("ppo", "needs a model: ppo:PATH"),
    ("ppo:/no/such/model.zip", "ppo:/no/such/model.zip: no such model file"),
    ("oracle:2:later", "expected oracle:H or oracle:H:replay"),
])  # fmt: skip
def test_bad_specs_fail_before_any_run(spec, msg):
    with pytest.raises(KisimError) as e:
        check_policies(["hpa", spec])
    assert msg in str(e.value) and "\n" not in str(e.value)


# --------------------------------------------------------------------------- every policy runs


ALL = ["static", "static-gpu", "static-cpu", "hpa", "threshold", "kpa", "oracle"]


@pytest.mark.parametrize("spec", ALL)
def test_each_policy_runs_a_short_episode(short, spec):
    run = run_policy(spec, short, seed=1)
    ws = run.episode.windows
    assert [w.duration for w in ws] == [15.0] * 8  # the scenario's timeline grid for everyone
    assert run.steps == 4 and np.isfinite(run.reward)
    assert run.episode.summary["served"] > 0
    g = {w.gpu_desired for w in ws}
    c = {w.cpu_desired for w in ws}
    if spec == "static-gpu":
        assert g == {1} and c == {0}
    if spec == "static-cpu":  # pod for pod: as many CPU pods as static-gpu has GPU pods
        assert g == {0} and c == {1}
        assert run.scenario.pools["cpu"].resources.cpu == run.scenario.pools["gpu"].resources.cpu
    if spec == "static":
        assert g == {1} and c == {1} and run.scenario.controller.name == "static"
        res = run.scenario.pools["gpu"].resources.model_dump()
        assert res == {"cpu": 2.0, "memory_gib": 4.0, "gpu": 1}


def test_hpa_target_is_configurable(short):
    assert make_policy("hpa:0.4").scenario(short).controller.hpa.target_cpu_utilization == 0.4
    assert make_policy("hpa").scenario(short).controller.name == "hpa"


def test_threshold_scales_up_under_overload(cpu_only):
    pol = make_policy("threshold")
    run = run_policy(pol, cpu_only, seed=0)
    ups = [e for e in pol.log if e[1] == "up"]
    assert ups and ups[0][0] <= 60.0  # reacts to the spike within two steps
    cpus = [w.cpu_desired for w in run.episode.windows]
    assert max(cpus) > cpus[0] == 1
    gaps = np.diff([e[0] for e in ups])
    assert np.all(gaps >= pol.cooldown_up_s)


def test_kpa_panics_on_a_spike_and_never_scales_down_while_panicking(cpu_only):
    pol = make_policy("kpa")
    run = run_policy(pol, cpu_only, seed=0)
    cpu = [(t, p, d) for t, pool, p, d in pol.log if pool == "cpu"]
    assert [t for t, _, _ in cpu][:3] == [2.0, 4.0, 6.0]  # a decision every 2 s
    panicking = [t for t, p, _ in cpu if p]
    assert panicking and 30.0 <= panicking[0] <= 45.0  # enters panic at the spike
    prev = None
    for t, p, d in cpu:
        if p and prev is not None and prev[1]:
            assert d >= prev[2], f"scaled down while panicking at t={t}"
        prev = (t, p, d)
    assert max(w.cpu_desired for w in run.episode.windows) >= 3


def test_kpa_decision_rule():
    k = PoolKPA(target=10.0, stable_n=30, panic_n=3, min_scale=1, max_scale=100)
    assert k.decide(2.0, 10.0, ready=1) == 1 and not k.panicking
    assert k.decide(4.0, 200.0, ready=1) >= 2 and k.panicking  # 6 s avg 70 >= 2 x 10 x 1
    top = k.max_panic_pods
    assert k.decide(6.0, 0.0, ready=top) == top  # no scale-down in panic
    for t in range(8, 70, 2):
        k.decide(float(t), 0.0, ready=top)
    assert not k.panicking  # 60 s after the last time over the threshold
    assert k.decide(72.0, 0.0, ready=top) < top


# --------------------------------------------------------------------------- oracle


def test_oracle_is_at_least_as_good_as_hpa_by_its_objective(short):
    hpa = run_policy("hpa", short, seed=2)
    oracle = run_policy("oracle", short, seed=2)
    assert oracle.reward >= hpa.reward


def test_oracle_fork_and_replay_agree(short):
    sc = override(short, "t", duration_s=90.0)
    fork, replay = make_policy("oracle:2"), make_policy("oracle:2:replay")
    a, b = run_policy(fork, sc, seed=3), run_policy(replay, sc, seed=3)
    assert fork.decisions == replay.decisions  # the same scores: snapshots are exact
    assert a.reward == b.reward


def test_brute_force_bounds_the_oracle(short):
    from agents.policies.oracle import brute_force, candidates

    sc = override(short, "t", duration_s=60.0)

    def cands(env):
        ctx = env.ctx
        return candidates(ctx.layout, env.state.desired, ctx.min_replicas, ctx.max_replicas, 1,
                          [(0, -1), (0, -1, 1)], ctx.rungs)  # fmt: skip

    env = KisimEnv(sc)
    env.reset(seed=0)
    best, seq = brute_force(env, 2, cands)
    assert len(seq) == 2
    replay = KisimEnv(sc)
    replay.reset(seed=0)
    total = sum(replay.step(a)[1] for a in seq)
    assert total == pytest.approx(best)  # the best sequence earns what the search says
    assert best >= run_policy("hpa", sc, seed=0).reward


def test_rung_moves_reach_targets_by_the_nearest_rung(short):
    from agents.policies.base import replicas_action
    from agents.policies.oracle import candidates

    ctx = KisimEnv(override(short, "t", **{"env.replica_steps": [2, 6]})).ctx  # rungs -6,-2,0,2,6
    desired = {"gpu": 1, "cpu": 4}
    got = [replicas_action(ctx, desired, {"gpu": None, "cpu": want}, "balanced")[1]
           for want in (4, 5, 7, 8, 9, 20, 2, 0)]  # gaps 0, 1, 3, 4, 5, 16, -2, -4
    assert got == [2, 3, 3, 3, 4, 4, 1, 1]  # a gap moves (1: +2); ties (4, -4) take the smaller
    cands = candidates(ctx.layout, desired, ctx.min_replicas, ctx.max_replicas, 1,
                       [(0,), (0, 1, -1, 2, -2)], ctx.rungs)  # fmt: skip
    assert [c[1] for c in cands] == [2, 3, 1, 4, 0]  # cpu 4, 6, 2, 8 (max 8: 10 clamps), 0
    clamped = candidates(ctx.layout, {"gpu": 1, "cpu": 7}, ctx.min_replicas, ctx.max_replicas,
                         1, [(0,), (0, 1, 2)], ctx.rungs)  # fmt: skip
    assert [c[1] for c in clamped] == [2, 3]  # +2 and +6 both reach max 8: tried once


# --------------------------------------------------------------------------- eval wiring


def test_twin_episode_is_picklable_and_writes_a_run(short, tmp_path):
    ep = TwinEpisode(json.loads(resolved_json(short)))
    ep2 = pickle.loads(pickle.dumps(ep))
    ep2("kpa", "spike", 0, tmp_path / "run")
    s = read_summary(tmp_path / "run")
    assert s["policy"] == "kpa" and np.isfinite(s["episode_reward"])
    tl = read_timeline(tmp_path / "run")
    assert len(tl["t_end"]) == 8  # 120 s / window_s 15
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["controller"]["name"] == "external" and cfg["policy"] == "kpa"


def test_ppo_policy_loads_a_model_and_acts(short, tmp_path):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from agents.policies.model_files import save_stats

    venv = VecNormalize(DummyVecEnv([lambda: KisimEnv(short)]))
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=8, n_epochs=1, device="cpu", seed=0)
    model.learn(8)
    model.save(tmp_path / "m.zip")
    venv.save(str(tmp_path / "vecnormalize.pkl"))
    save_stats(venv, tmp_path / "vecnormalize.npz")  # what kisim train writes beside it
    check_policies([f"ppo:{tmp_path / 'm'}"])  # `.zip` may be left out, as with PPO.load
    pol = make_policy(f"ppo:{tmp_path / 'm.zip'}")
    run = run_policy(pol, short, seed=0)
    assert pol.vecnorm is not None and run.steps == 4
    bad = make_policy(f"ppo:{tmp_path / 'm.zip'}")
    with pytest.raises(KisimError, match="preset is Discrete"):
        run_policy(bad, override(short, "t", **{"env.action": "hpa-target"}), seed=0)
