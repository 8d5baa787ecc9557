"""The benchmark's platform family: its opponents and grids, the leaderboard's platform
columns, a tiny run, and bad input."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from agents.benchmark import leaderboard, platform_table
from agents.benchmark.opponents import (
    PLATFORM_OPPONENTS,
    PLATFORM_RULES,
    RULES,
    family,
    family_hpa,
    family_rules,
    platform_constant_grid,
)
from agents.benchmark.run import run_benchmark
from kisim.core.config import load_scenario
from kisim.core.errors import KisimError
from kisim.env.environment import DEFAULT_SCENARIO

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "configs" / "scenarios" / "platform" / "benchmark" / "platform-mixed.yaml"


@pytest.fixture(scope="module")
def sc():
    return load_scenario(BENCH)


def test_family_and_grids(sc) -> None:
    assert family(sc) == "platform" and family_hpa(sc) == "platform-hpa"
    assert family_rules(sc) == PLATFORM_RULES
    single = load_scenario(DEFAULT_SCENARIO)
    assert (family(single), family_rules(single), family_hpa(single)) == ("service", RULES, "hpa")
    assert not set(RULES) & set(PLATFORM_RULES)
    # the status quo (the scenario's HPA target 0.6) is in the grids tuning searches
    assert "platform-hpa:0.6" in PLATFORM_OPPONENTS["platform-hpa"].grid(sc)
    assert "platform-prescaled:0.6" in PLATFORM_OPPONENTS["platform-prescaled"].grid(sc)
    assert platform_constant_grid(sc) == [f"platform-static:{n}" for n in range(1, 7)]


def test_platform_run_metrics(sc) -> None:
    s = {"platform_cost": 2.0, "platform_requests": 4e5, "platform_slo_attainment": 0.97,
         "platform_preemptions": 3.0, "p95_ms": 40.0, "episode_reward": -20.0,
         "tenant_a_slo_attainment": 0.9, "tenant_a_workflows_completed": 4.0,
         "tenant_a_workflow_completion_s": 300.0}  # fmt: skip
    m, src = leaderboard.run_metrics(s, sc)
    assert src == "platform"
    assert m["cost_per_mreq"] == pytest.approx(5.0)  # 2 USD / 0.4 M requests
    assert m["slo_attainment"] == 0.97 and m["tenant_a_workflows_completed"] == 4.0
    assert platform_table.tenants_of(s) == ["a"]
    assert platform_table.metrics({"p95_ms": 1.0}) == {}


def test_tiny_platform_benchmark(tmp_path) -> None:
    res = run_benchmark([BENCH], tmp_path, runs=2, train=1, opponents=["platform-hpa"],
                        duration=60.0, progress=False)  # fmt: skip
    b = res.boards[0]
    assert b.cost_source == "platform" and b.oracle is None
    assert b.hpa == b.tuned["platform-hpa"] and b.best_rule == b.tuned["platform-hpa"]
    roles = {e.role for e in b.entries}
    assert {"best constant", "untuned platform-hpa", "tuned platform-hpa"} <= roles or \
        {"best constant", "tuned platform-hpa"} <= roles  # untuned may be the tuned spec
    md = (tmp_path / "leaderboard.md").read_text()
    assert "Platform (per run" in md and "studio SLO att." in md and "node cost (USD)" in md
    with (tmp_path / "platform.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["policy"] for r in rows} == {e.policy for e in b.entries}
    for r in rows:
        assert math.isfinite(float(r["platform_cost"])) and float(r["platform_cost"]) > 0
        assert 0 <= float(r["tenant_studio_slo_attainment"]) <= 1


def test_platform_scenario_needs_platform_hpa(tmp_path) -> None:
    with pytest.raises(KisimError, match="platform family.*needs platform-hpa"):
        run_benchmark([BENCH], tmp_path, runs=2, train=1, opponents=["hpa"], duration=60.0,
                      progress=False)  # fmt: skip
    with pytest.raises(KisimError, match="unknown 'nope'"):
        run_benchmark([BENCH], tmp_path, runs=2, opponents=["nope"], progress=False)
