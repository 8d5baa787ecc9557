"""The headroom check: the best constant configuration's search and the oracle's horizon."""

from __future__ import annotations

import json

import pytest

from agents.evaluation.headroom import (
    Constant,
    Runner,
    coarse_grid,
    headroom,
    levels,
    neighbours,
    oracle_horizon,
)
from kisim.core.config import load_scenario, override
from kisim.core.paths import config_path

SUITE = config_path("scenarios", "suite")


def test_levels_keep_both_ends() -> None:
    assert levels(1, 4, 9) == [1, 2, 3, 4]
    assert levels(0, 20, 5) == [0, 5, 10, 15, 20]


def test_grid_tries_placements_only_where_two_pools_hold_pods() -> None:
    sc = load_scenario(SUITE / "hetero.yaml")
    grid = coarse_grid(sc)
    assert len(grid) <= 120 and len({c.label for c in grid}) == len(grid)
    for c in grid:
        busy = sum(n > 0 for _, n in c.counts)
        assert busy >= 1
        if busy == 1:
            assert c.placement == sc.routing.placement
    assert {c.placement for c in grid} == set(sc.routing.placements)
    one = load_scenario(SUITE / "gpu-fleet.yaml")
    assert [c.spec for c in coarse_grid(one)] == [f"fixed:gpu={n}" for n in range(1, 9)]


def test_neighbours_stay_in_bounds() -> None:
    sc = load_scenario(SUITE / "flash-crowd.yaml")
    c = Constant((("gpu", 1), ("cpu", 0)), "balanced")
    specs = {x.label for x in neighbours(sc, c)}
    assert specs == {"fixed:gpu=2 @balanced", "fixed:gpu=1,cpu=1 @balanced"}  # gpu min is 1
    c2 = Constant((("gpu", 2), ("cpu", 3)), "balanced")
    assert {x.placement for x in neighbours(sc, c2)} == set(sc.routing.placements)


def test_oracle_horizon_covers_the_slowest_start() -> None:
    assert oracle_horizon(load_scenario(SUITE / "gpu-fleet.yaml")) == 8  # p95 ~165 s GPU starts
    assert oracle_horizon(load_scenario(SUITE / "diurnal.yaml")) == 4  # p95 ~45 s: warm nodes
    assert oracle_horizon(load_scenario(SUITE / "cpu-fleet.yaml")) == 3  # 5 s CPU starts


@pytest.mark.slow
def test_headroom_on_a_short_gpu_fleet() -> None:
    sc = override(load_scenario(SUITE / "gpu-fleet.yaml"), "test", duration_s=300.0)
    r = headroom(sc, Runner(1), [0, 1], train_seeds=[1000, 1001], horizon=2, keep=2)
    assert r["best_constant_spec"].startswith("fixed:gpu=")
    assert r["oracle"] == "oracle:2:plan" and r["constant"]["seeds"] == [0, 1]
    assert r["gap"] == pytest.approx((r["oracle_reward"] - r["constant_reward"])
                                     / abs(r["oracle_reward"]))  # fmt: skip
    json.dumps(r)  # what bench.suite_headroom stores
