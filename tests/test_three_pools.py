"""A fleet of two GPU types plus CPU (`configs/scenarios/three-pools.yaml`: A10G, T4, CPU) runs
everywhere the seed's GPU + CPU pair runs: the twin, both env checkers, the baselines over its
pools (one HPA per pool), PPO training and `kisim eval`, whose report shows all three pools."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kisim.core.config import load_scenario, override
from kisim.core.errors import ConfigError
from kisim.env.environment import KisimEnv
from kisim.env.episode import run_windows, twin_backend

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "configs" / "scenarios" / "three-pools.yaml"
POOLS = ("a10g", "t4", "cpu")
KISIM = str(Path(sys.executable).parent / "kisim")


@pytest.fixture(scope="module")
def sc():  # type: ignore[no-untyped-def]
    return override(load_scenario(SCENARIO), "test", duration_s=180.0)


def test_the_twin_simulates_three_named_pools(sc) -> None:  # type: ignore[no-untyped-def]
    assert sc.pool_names == POOLS and sc.hpa_pools() == list(POOLS)
    ep = run_windows(twin_backend(), sc, 3)
    w = ep.windows[-1]
    assert tuple(w.pools) == POOLS
    assert all(f"{p}_replica_s" in ep.summary and f"{p}_ready_mean" in ep.summary for p in POOLS)
    assert {f"{p}_{k}" for p in POOLS for k in ("desired", "ready", "pending", "replica_s")} \
        <= set(w.as_dict())  # fmt: skip
    served_by = {p: w.pool(p).replica_s for p in POOLS}
    assert all(v > 0 for v in served_by.values()) and ep.summary["served"] > 0


def test_each_gpu_pool_lands_on_its_own_gpu_type(sc) -> None:  # type: ignore[no-untyped-def]
    """A second A10G pod takes the A10G node's second GPU, never a T4 (`gpu_device`)."""
    from twin.backend import TwinBackend

    b = TwinBackend()
    b.reset(override(sc, "t", **{"pools.a10g.replicas": 2, "controller.name": "static"}), 0)
    b.advance(60.0)
    nodes = {p.pool: set() for p in b.pods.pods["a10g"] + b.pods.pods["t4"]}
    for pool in ("a10g", "t4"):
        for p in b.pods.pods[pool]:
            nodes[pool].add(p.binding.node.name)
    assert nodes == {"a10g": {"a10g-node"}, "t4": {"t4-node"}}


def test_pool_keyed_fields_name_the_pools(sc) -> None:  # type: ignore[no-untyped-def]
    for field, value in (("controller.hpa.pools", ["gpu"]), ("env.prices", {"gpu": 1.0}),
                         ("routing.weights", {"balanced": {"l4": 1.0}})):  # fmt: skip
        with pytest.raises(ConfigError, match=f"{field}.*'(gpu|l4)' is not a pool.*a10g, t4, cpu"):
            override(sc, "t", **{field: value})
    with pytest.raises(ConfigError, match="pools.A_1: a pool name"):
        override(sc, "t", **{"pools.A_1": sc.pools["cpu"].model_dump(mode="json")})


def test_routing_weights_split_traffic_per_pool(sc) -> None:  # type: ignore[no-untyped-def]
    from kisim.core.routing import RouteTable

    ws = {"balanced": {"a10g": 3.0, "t4": 1.0, "cpu": 0.0}, "gpu-only": {"a10g": 1.0, "t4": 1.0}}
    run = override(sc, "t", **{"routing.weights": ws, "controller.name": "static"})
    assert run.routing.placements == ("balanced", "gpu-only")
    shares = RouteTable(run).shares("balanced", {"a10g": 1, "t4": 1, "cpu": 1})
    assert shares == {"a10g": 0.75, "t4": 0.25, "cpu": 0.0}
    ep = run_windows(twin_backend(), run, 0)
    assert ep.summary["served"] > 0


def test_presets_are_laid_out_over_the_pools_and_pass_the_checkers(sc) -> None:  # type: ignore[no-untyped-def]
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = KisimEnv(sc)
    assert env.observation_space.shape == (11,)
    assert list(env.action_space.nvec) == [5, 5, 5, 3]
    assert env._obs.features[5:8] == ("a10g_replicas", "t4_replicas", "cpu_replicas")
    check_env(env, skip_render_check=True)
    sb3_check_env(KisimEnv(sc))
    ext = KisimEnv(sc, observation="extended", action="resources")
    assert ext.observation_space.shape == (23,) and ext.action_space.shape == (12,)
    sb3_check_env(ext)
    obs, _ = env.reset(seed=1)
    obs, *_ , info = env.step(np.array([3, 2, 4, 1]))  # a10g +1, t4 hold, cpu +2
    w = info["window"]
    assert (w.pool("a10g").desired, w.pool("t4").desired, w.pool("cpu").desired) == (2, 1, 3)


@pytest.mark.parametrize("policy", ["hpa", "kpa", "threshold", "static", "static-t4:2", "oracle:1"])
def test_baselines_run_over_the_pools(sc, policy) -> None:  # type: ignore[no-untyped-def]
    from agents.evaluation.policy_run import run_policy

    run = run_policy(policy, override(sc, "t", duration_s=90.0), 2)
    assert all(f"{p}_replica_s" in run.episode.summary for p in POOLS)
    if policy == "hpa":
        assert run.scenario.controller.hpa.pools == list(POOLS)  # one HPA per pool
    if policy.startswith("static-t4"):
        s = run.episode.summary
        assert s["t4_replica_s"] > 0 and s["a10g_replica_s"] == 0 and s["cpu_replica_s"] == 0


@pytest.mark.slow
def test_train_then_eval_hpa_and_ppo_report_shows_three_pools(tmp_path) -> None:
    train = tmp_path / "train"
    r = subprocess.run([KISIM, "train", "--scenario", str(SCENARIO), "--timesteps", "2048",
                        "--out", str(train)], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    model = train / "best_model.zip"
    assert model.is_file()
    out = tmp_path / "eval"
    r = subprocess.run([KISIM, "eval", "--scenario", str(SCENARIO), "--policies",
                        f"hpa,ppo:{model}", "--patterns", "ramp", "--runs", "2",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    report = (out / "report.md").read_text()
    for label in ("a10g replica-seconds", "t4 replica-seconds", "CPU replica-seconds"):
        assert label in report
    with (out / "summary.csv").open() as f:
        metrics = {row["metric"] for row in csv.DictReader(f)}
    assert {f"{p}_replica_s" for p in POOLS} <= metrics
    assert (out / "figures" / "timeseries_ramp.png").is_file()
    timeline = (out / "runs" / "hpa" / "ramp" / "seed-0" / "timeline.csv").read_text()
    assert all(f"{p}_ready" in timeline.splitlines()[0] for p in POOLS)
