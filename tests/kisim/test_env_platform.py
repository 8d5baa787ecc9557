"""The env over the shared platform (kisim.env.platform_presets, kisim.env.platform_view):
the checkers, the observation and action layout, what an action does to the platform, the
reward's arithmetic, determinism, and one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from kisim.core.config import load_scenario, override
from kisim.core.errors import ConfigError
from kisim.env.environment import DEFAULT_SCENARIO, KisimEnv
from kisim.env.episode import finish
from kisim.env.platform_view import PlatformView, platform_context

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "configs" / "scenarios" / "platform" / "benchmark" / "platform-mixed.yaml"


@pytest.fixture(scope="module")
def sc():
    return override(load_scenario(BENCH), "test", duration_s=150.0)


def test_platform_env_passes_gymnasium_and_sb3_checkers(sc) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(KisimEnv(sc), skip_render_check=True)
    sb3_check_env(KisimEnv(sc))


def test_layout_follows_models_pools_and_tenants(sc) -> None:
    env = KisimEnv(sc)
    # 3 models x 6 + 3 node pools x 4 + pending pods + 2 tenants x 5 + front door, cost, progress
    assert env.observation_space.shape == (3 * 6 + 3 * 4 + 1 + 2 * 5 + 3,)
    assert list(env.action_space.nvec) == [3] * 6 + [2, 2]
    f = env._obs.features
    assert f[:6] == ("detect_load", "detect_miss", "detect_busy", "detect_ready",
                     "detect_desired", "detect_queue")  # fmt: skip
    assert "gpuspot_cordoned" in f and "lab_held" in f and f[-1] == "progress"
    # the agent is the models' autoscaler: their HPAs are off in the scenario the env runs
    assert all(m.hpa_target is None for m in env.scenario.platform.models.values())
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_an_action_moves_replicas_floors_and_holds_queues(sc) -> None:
    env = KisimEnv(sc)
    env.reset(seed=3)
    act = env._act
    # detect +1, segment -1 (already at its min: clamped), gpuspot floor +1, hold studio
    a = act.encode({"detect": 1, "segment": -1}, {"gpuspot": 1}, {"studio": True})
    _, _, _, _, info = env.step(a)
    s = env.state.platform.now
    assert s["model_detect_desired"] == 2.0
    assert s["model_segment_desired"] == 1.0
    assert info["clamped"] == {"segment.replicas": "0 -> 1 (min_replicas)"}
    assert s["pool_gpuspot_nodes_ready"] + s["pool_gpuspot_nodes_provisioning"] >= 1
    assert s["tenant_studio_held"] == 1.0 and s["tenant_lab_held"] == 0.0
    assert env.state.platform.floor["gpuspot"] == 1
    # hold() repeats the holds and moves nothing
    h = env.hold()
    assert list(h) == [1] * 6 + [1, 0]
    env.step(h)
    assert env.state.platform.now["model_detect_desired"] == 2.0
    assert env.state.platform.now["tenant_studio_held"] == 1.0


def test_held_queue_admits_nothing_new(sc) -> None:
    """Kueue `stopPolicy: Hold`: no new workload of a held queue is admitted (running ones go
    on). Held from the start, a tenant's quota in use stays 0 however long it waits."""
    env = KisimEnv(override(sc, "t", duration_s=600.0))
    env.reset(seed=5)
    a = env._act.encode({}, {}, {"studio": True, "lab": True})
    done = False
    while not done:
        *_, done, _ = env.step(a)
        s = env.state.platform.now
        assert s["tenant_studio_used_cpu"] == 0.0 and s["tenant_lab_used_gpu"] == 0.0
    assert s["tenant_studio_waiting_steps"] + s["tenant_lab_waiting_steps"] > 0


def test_reward_terms_add_up_to_the_run_summary(sc) -> None:
    """The cost term is the nodes' money of the step over the largest bill: summed over an
    episode (times the bill and the step) it is the summary's platform_cost; completions
    summed are the summary's completed workflows."""
    env = KisimEnv(override(sc, "t", duration_s=600.0))
    env.reset(seed=2)
    pc = env.ctx.platform
    money = done = 0.0
    truncated = False
    windows = []
    while not truncated:
        _, r, _, truncated, info = env.step(env.hold())
        terms = info["reward_terms"]
        v = env.state.platform
        money += -terms["cost"] * pc.cost_max_per_hour * v.dt / 3600.0
        done += sum(v.completed(t) for t in pc.tenants)
        assert r == pytest.approx(sum(env._rew.weights[k] * x for k, x in terms.items()))
        lo, hi = env._rew.bounds
        assert lo - 1e-9 <= r <= hi + 1e-9
        windows.append(info["window"])
    summ = finish(env.backend, env.scenario, windows).summary
    assert money == pytest.approx(summ["platform_cost"], rel=1e-9)
    assert done == sum(summ[f"tenant_{t}_workflows_completed"] for t in ("studio", "lab"))


def test_same_seed_same_actions_same_numbers(sc) -> None:
    def run() -> list[np.ndarray]:
        env = KisimEnv(sc)
        env.action_space.seed(7)
        out = [env.reset(seed=11)[0]]
        for _ in range(5):
            obs, r, *_ = env.step(env.action_space.sample())
            out += [obs, np.array([r])]
        return out

    for a, b in zip(run(), run(), strict=True):
        assert np.array_equal(a, b)


def test_view_arithmetic_on_synthetic_states(sc) -> None:
    pc = platform_context(sc)
    base = {k: 0.0 for m in pc.models for k in (
        f"model_{m}_answered", f"model_{m}_rejected", f"model_{m}_within_slo",
        f"model_{m}_arrived", f"model_{m}_busy_s", f"model_{m}_ready", f"model_{m}_queue",
        f"model_{m}_desired")}  # fmt: skip
    base["cost"] = 0.0
    v0 = PlatformView.first(pc, base)
    after = {**base, "model_detect_answered": 90.0, "model_detect_rejected": 10.0,
             "model_detect_within_slo": 80.0, "model_detect_arrived": 3000.0,
             "model_detect_ready": 2.0, "model_detect_busy_s": 30.0,
             "model_segment_queue": 4.0, "cost": 0.01}  # fmt: skip
    v = v0.next(after, 30.0)
    assert v.miss("detect") == pytest.approx(0.2)  # 10 late + 10 rejected of 100
    assert v.load("detect") == pytest.approx(3000 / 30 / 150)
    assert v.busy("detect") == pytest.approx(0.5)
    assert v.miss("segment") == 1.0  # queued, nothing answered: stalled
    assert v.miss("embed") == 0.0  # no load
    assert v.cost_rate() == pytest.approx(0.01 * 120 / pc.cost_max_per_hour)  # USD/h / bill
    assert v.tenant_miss("studio") == (100.0, 20.0)


def test_platform_presets_need_a_platform_section() -> None:
    with pytest.raises(ConfigError, match=r"env\.observation: preset 'platform' needs a "
                                          r"scenario with a platform section"):  # fmt: skip
        KisimEnv(DEFAULT_SCENARIO, observation="platform")
    with pytest.raises(ConfigError, match=r"env\.action"):
        KisimEnv(DEFAULT_SCENARIO, action="platform")
    with pytest.raises(ConfigError, match=r"env\.action: preset 'platform-gpu' needs"):
        KisimEnv(DEFAULT_SCENARIO, action="platform-gpu")


def test_single_service_layouts_are_unchanged() -> None:
    env = KisimEnv(DEFAULT_SCENARIO)
    assert env.observation_space.shape == (10,) and list(env.action_space.nvec) == [5, 5, 3]
    assert env.ctx.platform is None
    env.reset(seed=0)
    assert env.state.platform is None
    assert not math.isnan(float(env.step(env.hold())[1]))


def test_platform_gpu_action_sets_a_whole_or_a_shared_gpu_per_time_sliced_model(sc) -> None:
    """`platform-gpu`: one more absolute choice per model on a time-sliced pool (detect and
    segment share T4s advertised as 2 slots; embed is on CPU and gets none). Choosing the
    whole GPU rolls detect's pods out at 2 slots each; hold() then repeats that choice."""
    from gymnasium.utils.env_checker import check_env

    g = override(sc, "t", **{"env.action": "platform-gpu"})
    env = KisimEnv(g)
    assert list(env.action_space.nvec) == [3] * 6 + [2, 2] + [2, 2]
    check_env(KisimEnv(g), skip_render_check=True)
    env.reset(seed=1)
    _, _, _, _, info = env.step(env._act.encode({}, {}, {}, whole_gpu={"detect": True}))
    assert env.state.platform.now["model_detect_gpu"] == 2.0
    assert env.state.platform.now["model_segment_gpu"] == 1.0
    assert list(env.hold()) == [1] * 6 + [0, 0] + [1, 0]
    env.step(env.hold())
    assert env.state.platform.now["model_detect_gpu"] == 2.0
