"""The `min-scale` preset: the agent writes the floor of an in-cluster KPA (`kisim.env.actions.
MinScale`, `agents.policies.min_scale`), the `cron` teacher, and a model trained so played on
the plain suite scenario."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from agents.evaluation.policy_run import run_policy
from agents.policies import make_policy
from agents.policies.cron import Schedule
from agents.policies.kpa import TICK_S
from kisim.core.config import load_scenario, override, resolved_json
from kisim.core.errors import ConfigError, KisimError
from kisim.core.routing import RouteTable
from kisim.env.actions import PARTS, min_scale_action
from kisim.env.environment import KisimEnv

ROOT = Path(__file__).resolve().parents[2]
CPU_FLEET = ROOT / "configs" / "scenarios" / "suite" / "cpu-fleet.yaml"
TRAINED = ROOT / "configs" / "scenarios" / "suite-train" / "cpu-fleet-min-scale.yaml"


@pytest.fixture(scope="module")
def steered():
    """cpu-fleet's first 240 s (a burst to 1,800 req/s from 200-210 s), agent on KPA's floor."""
    return override(load_scenario(TRAINED), "test", duration_s=240.0)


def floors_seen(env: KisimEnv) -> list[tuple[float, dict[str, int]]]:
    """Record the floor the autoscaler reads at each of its ticks."""
    seen: list[tuple[float, dict[str, int]]] = []
    read = env.autoscaler._floors

    def spy(t: float):
        f = read(t)
        seen.append((t, dict(f)))
        return f

    env.autoscaler._floors = spy
    return seen


def act(*floors: int) -> np.ndarray:
    """cpu-fleet is laid out as the seed's (gpu, cpu) with its three placements: no gpu pool,
    the cpu pool's floor (min_replicas 1) for each fifth of the step, balanced routing."""
    fifths = list(floors) + [floors[-1]] * (PARTS - len(floors))
    return np.array([0] * PARTS + [f - 1 for f in fifths] + [1])


def test_the_preset_needs_a_known_autoscaler():
    sc = load_scenario(CPU_FLEET)
    with pytest.raises(ConfigError, match="needs env.autoscaler"):
        KisimEnv(sc, action="min-scale")
    with pytest.raises(ConfigError, match="unknown autoscaler 'nope'"):
        KisimEnv(override(sc, "t", **{"env.autoscaler": "nope"}), action="min-scale")
    with pytest.raises(KisimError, match="cannot run beside it"):
        KisimEnv(load_scenario(TRAINED), inner=make_policy("kpa"))


def test_gymnasium_env_checker(steered):
    from gymnasium.utils.env_checker import check_env

    env = KisimEnv(steered)
    assert env.action_space.nvec.tolist() == [1] * PARTS + [20] * PARTS + [3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)


def test_a_floor_scales_up_when_it_takes_effect_and_holds_the_kpa(steered):
    env = KisimEnv(steered)
    env.reset(seed=0)
    seen = floors_seen(env)
    _, _, _, _, info = env.step(act(1, 1, 1, 12, 12))  # from 3/5 of the 10-s step: t = 6 s
    assert [f["cpu"] for t, f in seen] == [1, 1, 12, 12, 12]  # the tick that closes 3/5 opens 4/5
    assert [t for t, _ in seen] == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert [a.replicas["cpu"] for a in info["inner_applied"]][-1] >= 12
    assert env.state.floors == {"cpu": 12} and not env.state.pending["cpu"]
    for _ in range(3):  # 600 req/s needs ~6 pods: the floor, not the KPA, holds 12
        _, _, _, _, info = env.step(env.hold())
        assert info["window"].pool("cpu").desired == 12
    env.step(act(1))
    _, _, _, _, info = env.step(act(1))
    assert info["window"].pool("cpu").desired < 12  # a lower floor lets the KPA scale down


def test_a_floor_from_the_step_start_applies_at_once(steered):
    env = KisimEnv(steered)
    env.reset(seed=0)
    _, _, _, _, info = env.step(act(9))
    assert info["applied"].replicas["cpu"] == 9


def test_cron_is_cron_kpas_floor_at_every_tick(steered):
    """The teacher writes cron-kpa's schedule (KPA's 2-s tick = a fifth of the 10-s step): the
    floor the KPA reads at each tick is the schedule's there, and it pre-scales for the burst."""
    pol = make_policy("cron:0.85:0")
    env = KisimEnv(steered)
    env.reset(seed=0)
    pol.reset(env.scenario)
    pol.attach(env)
    seen = floors_seen(env)
    step = steered.env.step_s
    sched = Schedule(steered, RouteTable(steered), ["cpu"], step / PARTS, 0.85, 0.0, "t")
    done, t = False, 0.0
    while not done:
        _, _, _, done, _ = env.step(pol.act(None, None, t))
        t += step
    assert [x for x, _ in seen] == [TICK_S * k for k in range(1, 121)]
    assert TICK_S == step / PARTS
    for x, f in seen:  # a step's last tick reads the last fifth's floor; the next step's first
        want = sched.floors_at("balanced", {"cpu": 1}, x - (TICK_S if x % step == 0 else 0))
        assert f["cpu"] == want["cpu"], x
    floor = dict(seen)
    assert floor[190.0]["cpu"] == 5 and floor[198.0]["cpu"] == 10  # up before the rise at 200 s
    assert floor[210.0]["cpu"] == 14  # 1,800 req/s at 0.85 x 158.6 req/s a pod


def test_cron_is_deterministic_and_refuses_a_scenario_without_the_preset(steered):
    a, b = (run_policy("cron:0.85:0", steered, 3).reward for _ in range(2))
    assert a == b
    with pytest.raises(ConfigError, match="needs env.autoscaler"):
        run_policy("cron", load_scenario(CPU_FLEET), 0)


def test_a_steering_model_plays_the_plain_scenario_in_its_preset(tmp_path):
    (tmp_path / "best_model.zip").write_bytes(b"")
    sc = load_scenario(CPU_FLEET)
    pol = make_policy(f"ppo:{tmp_path / 'best_model.zip'}")
    assert pol.scenario(sc) is sc  # no config.json: the scenario's own preset
    (tmp_path / "config.json").write_text(json.dumps({"scenario": resolved_json_of(TRAINED)}))
    played = pol.scenario(sc)
    assert (played.env.action, played.env.autoscaler) == ("min-scale", "kpa:1:10")
    (tmp_path / "config.json").write_text(json.dumps({"scenario": resolved_json_of(CPU_FLEET)}))
    assert pol.scenario(sc) is sc


def resolved_json_of(path: Path) -> dict:
    return json.loads(resolved_json(load_scenario(path)))


def test_the_training_scenario_is_cpu_fleet_but_for_the_action():
    a, b = resolved_json_of(TRAINED), resolved_json_of(CPU_FLEET)
    assert "autoscaler" not in b["env"]  # scenarios without one fingerprint as before
    assert (a["env"].pop("action"), a["env"].pop("autoscaler")) == ("min-scale", "kpa:1:10")
    assert b["env"].pop("action") == "replicas"
    for d in (a, b):
        for k in ("name", "description"):
            d.pop(k)
    assert a == b


HETERO = ROOT / "configs" / "scenarios" / "suite" / "hetero.yaml"
HETERO_TRAINED = ROOT / "configs" / "scenarios" / "suite-train" / "hetero-min-scale.yaml"


def test_a_hetero_model_on_the_rules_deployment_plays_its_training_scenario(tmp_path):
    """`ppo:PATH@gpu-70+t4=1` on hetero.yaml is hetero-min-scale.yaml (cron-keda's setup, the
    preset and keda:2:0 from the model's config.json) but for the name."""
    (tmp_path / "best_model.zip").write_bytes(b"")
    (tmp_path / "config.json").write_text(
        json.dumps({"scenario": resolved_json_of(HETERO_TRAINED)}))  # fmt: skip
    pol = make_policy(f"ppo:{tmp_path / 'best_model.zip'}@gpu-70+t4=1")
    played = json.loads(resolved_json(pol.scenario(load_scenario(HETERO))))
    trained = resolved_json_of(HETERO_TRAINED)
    assert (played["env"]["action"], played["env"]["autoscaler"]) == ("min-scale", "keda:2:0")
    for d in (played, trained):
        for k in ("name", "description"):
            d.pop(k)
    assert played == trained


def test_a_keda_floor_orders_pods_the_request_rate_would_not():
    """KEDA's HPA every 15 s takes the larger of the request rate's proposal and the agent's
    floor (cron-keda's cron trigger); its down-stabilisation argument (0 s) is the HPA's."""
    sc = override(load_scenario(HETERO_TRAINED), "test", duration_s=120.0)
    env = KisimEnv(sc)
    env.reset(seed=0)
    assert env.autoscaler.period_s == 15.0
    assert env.autoscaler.sc.controller.hpa.scale_down_stabilization_s == 0.0
    seen = floors_seen(env)
    want = {"a10g": 2, "t4": 3, "cpu": 3}
    a = min_scale_action(env.ctx, [want] * PARTS, "gpu-70")
    for _ in range(3):  # 90 s: a 250-req/s base load, which KEDA alone serves with 1 T4 + 1 CPU
        _, _, _, _, info = env.step(a)
    assert [t for t, _ in seen] == [15.0, 30.0, 45.0, 60.0, 75.0, 90.0]
    assert all(f == want for _, f in seen)
    assert {p: env.state.desired[p] for p in want} == want
    env.reset(seed=0)  # the floors at the pools' minimum: the rate alone orders no A10G
    low = min_scale_action(env.ctx, [{}] * PARTS, "gpu-70")
    for _ in range(3):
        env.step(low)
    assert env.state.desired["a10g"] == 0 and env.state.desired["t4"] == 1
