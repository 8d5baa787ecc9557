"""``POLICY@SETUP`` (agents.policies.setup) and the benchmark's coordinate search over setups."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.benchmark.setups import constant_specs, setups, tune_with_setup
from agents.evaluation.policy_run import run_policy
from agents.policies import make_policy
from agents.policies.setup import Setup, split_setup
from kisim.core.config import load_scenario, override
from kisim.core.errors import KisimError

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "configs" / "scenarios" / "suite"


@pytest.fixture(scope="module")
def hetero():
    return load_scenario(SUITE / "hetero.yaml")


def test_split_setup():
    assert split_setup("hpa:0.5@gpu-85+t4=1+a10g=2") == (
        "hpa:0.5", Setup("gpu-85", (("t4", 1), ("a10g", 2))))
    assert split_setup("kpa@+cpu=1") == ("kpa", Setup(None, (("cpu", 1),)))
    assert split_setup("hpa:0.5") == ("hpa:0.5", None)
    assert split_setup("ppo:models/run@2/best.zip") == ("ppo:models/run@2/best.zip", None)
    for bad, msg in [("hpa@", "empty setup"), ("hpa@gpu-85+t4=1+t4=2", "named twice")]:
        with pytest.raises(KisimError, match=msg):
            split_setup(bad)


def test_setup_changes_placement_and_floors(hetero):
    sc = make_policy("hpa:0.45@gpu-85+t4=1").scenario(hetero)
    assert sc.routing.placement == "gpu-85" and sc.controller.name == "hpa"
    assert (sc.pools["t4"].replicas, sc.pools["t4"].min_replicas) == (1, 1)
    assert sc.pools["a10g"].replicas == 0  # untouched
    assert sc.controller.hpa.target_cpu_utilization == 0.45
    # the policy run from outside the cluster (no HPA object) keeps the setup
    outside = make_policy("hpa@gpu-50").for_backend(False)
    assert outside.scenario(hetero).routing.placement == "gpu-50"
    for bad, msg in [("hpa@nope", "no placement 'nope'"), ("hpa@+gpu=1", "no pool 'gpu'"),
                     ("hpa@+t4=5", "exceeds the pool's max_replicas 4")]:  # fmt: skip
        with pytest.raises(KisimError, match=msg):
            make_policy(bad).scenario(hetero)


@pytest.mark.slow
def test_a_floor_lets_the_hpa_scale_a_pool_that_starts_empty(hetero):
    # hetero's t4 pool starts at 0: an HPA does not scale a Deployment at zero replicas
    sc = override(hetero, "test", duration_s=240.0)
    plain = run_policy("hpa", sc, seed=1).episode.summary
    floored = run_policy("hpa:0.3@gpu-85+t4=1", sc, seed=1).episode.summary
    assert plain["t4_replica_s"] == 0.0
    assert floored["t4_replica_s"] >= 240.0 - 1e-9  # at least one pod, the whole run


def test_setups_of_the_suite():
    cpu = load_scenario(SUITE / "cpu-fleet.yaml")
    assert setups(cpu) == []  # one pool: nothing to choose
    het = load_scenario(SUITE / "hetero.yaml")
    opts = setups(het)
    assert len(opts) == 4 * 4  # 4 placements x floors {-, a10g, t4, both}
    assert opts[:4] == ["gpu-50", "gpu-50+a10g=1", "gpu-50+t4=1", "gpu-50+a10g=1+t4=1"]
    specs = constant_specs(het)
    assert specs[0] == "static" and len(specs) == len(set(specs))
    assert any("@" in s for s in specs) and all(s.count("@") <= 1 for s in specs)
    for s in specs[1:]:  # every constant is a valid policy on the scenario
        make_policy(s).scenario(het)


def test_coordinate_search_wiring(tmp_path):
    calls: list[tuple[str, list[str]]] = []

    def fake_tune(name, grid, out):
        calls.append((out.name, list(grid)))
        pick = {"setup": 1, "params": 2, "final": 0}[out.name]
        return {"chosen": grid[pick], "chosen_mean_reward": -1.0, "method": "m"}

    r = tune_with_setup("hpa", "hpa", ["hpa:0.3", "hpa:0.6", "hpa:0.9"], ["a", "b+t4=1"],
                        tmp_path, fake_tune)  # fmt: skip
    assert calls == [("setup", ["hpa@a", "hpa@b+t4=1"]),
                     ("params", ["hpa:0.3@b+t4=1", "hpa:0.6@b+t4=1", "hpa:0.9@b+t4=1"]),
                     ("final", ["hpa:0.9@a", "hpa:0.9@b+t4=1"])]  # fmt: skip
    assert r["chosen"] == "hpa:0.9@a"
    assert r["steps"] == {"setup": "hpa@b+t4=1", "params": "hpa:0.9@b+t4=1", "final": "hpa:0.9@a"}
