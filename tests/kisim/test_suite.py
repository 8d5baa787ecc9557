"""The benchmark suite: every file states its question, loads, runs, and is priced."""

from __future__ import annotations

import pytest

from kisim.core.config import load_scenario, override, with_pattern
from kisim.core.paths import config_path
from kisim.core.prices import pool_rates
from kisim.env.episode import run_windows, twin_backend

SUITE = config_path("scenarios", "suite")
FILES = sorted(SUITE.glob("*.yaml"))


def test_the_suite_has_its_six_scenarios() -> None:
    assert {f.stem for f in FILES} == {"gpu-fleet", "hetero", "cpu-fleet", "flash-crowd",
                                       "diurnal", "trace"}  # fmt: skip


@pytest.mark.parametrize("f", FILES, ids=lambda f: f.stem)
def test_each_scenario_poses_its_question_and_runs(f) -> None:
    assert f.read_text().startswith("# Question: ")
    sc = load_scenario(f)
    assert sc.env.reward == "cost" and sc.traffic.mode == "open"
    assert all(r > 0 for r in pool_rates(sc).values())
    # evaluating the scenario's own pattern by name keeps its parameters
    assert with_pattern(sc, sc.traffic.pattern.name).traffic.pattern == sc.traffic.pattern
    ep = run_windows(twin_backend(), override(sc, "test", duration_s=60.0), 0)
    assert ep.summary["served"] > 0 and ep.summary["cost"] > 0


def test_gpu_fleet_needs_five_pods_at_peak_and_one_in_the_trough() -> None:
    sc = load_scenario(SUITE / "gpu-fleet.yaml")
    p = sc.traffic.pattern.params
    lo, hi = p["base"] - p["amplitude"], p["base"] + p["amplitude"]
    per_pod = 400.0  # req/s a T4 pod serves within the SLO (docs/suite.md)
    assert lo <= per_pod and 4 * per_pod < hi <= 5 * per_pod
    st = sc.calibration.devices["t4"].startup
    assert 60 <= st.container_start_s + st.model_load_s + st.readiness_initial_delay_s <= 180
