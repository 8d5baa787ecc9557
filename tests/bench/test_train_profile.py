"""The training-speed profile: its split adds up, it changes no simulated number, it leaves
nothing wrapped, and the summary's arithmetic (speed-up, Amdahl bound, projection) is right."""

from __future__ import annotations

import math

import pytest

from bench.train_profile import env_alone, instrument, uninstrument
from bench.train_speed import summarise
from kisim.core.config import load_scenario, override
from kisim.env.environment import DEFAULT_SCENARIO, KisimEnv


def _rewards(sc) -> list[float]:
    env = KisimEnv(sc)
    env.action_space.seed(0)
    env.reset(seed=1_000_000)
    out, done = [], False
    while not done:
        _, r, term, trunc, _ = env.step(env.action_space.sample())
        out.append(r)
        done = term or trunc
    return out


def test_env_split_adds_up_and_changes_nothing() -> None:
    import twin.kernel

    sc = override(load_scenario(DEFAULT_SCENARIO), "test", duration_s=120.0)
    plain = _rewards(sc)
    original = twin.kernel.run_until
    instrument()
    try:
        res = env_alone(sc, 1)
        assert _rewards(sc) == plain  # timing wrappers change no number
    finally:
        uninstrument()
    assert twin.kernel.run_until is original
    parts = [k for k in res if k.endswith("_ms") and k != "ms_per_step"]
    assert math.isclose(sum(res[k] for k in parts), res["ms_per_step"], rel_tol=1e-3, abs_tol=1e-3)
    assert all(res[k] >= 0 for k in parts if k != "other_ms")
    assert res["kernel_ms"] > 0 and res["requests_per_step"] > 0 and res["steps"] == 4


def test_summary_speedup_and_projection() -> None:
    def row(tree: str, train: float, kshare: float) -> dict:
        return {"scenario": "s", "tree": tree, "env_steps_per_cpu_s": 1.0,
                "ppo_steps_per_cpu_s": 1.0, "train_steps_per_cpu_s": train,
                "ppo_env_share": 0.9, "env_requests_per_step": 10.0,
                "ppo_kernel_share": kshare}  # fmt: skip

    rows = [row("before", 50.0, 0.4), row("before", 70.0, 0.4), row("after", 100.0, 0.5),
            row("after", 100.0, 0.5)]
    before, after = summarise(rows)
    assert before["train_steps_per_cpu_s"] == 60.0 and before["rounds"] == 2
    assert after["speedup_train"] == pytest.approx(100 / 60, abs=1e-3)
    assert after["speedup_kernel_units"] == pytest.approx(0.5 / 0.4, abs=1e-3)  # CPU/kernel CPU
    assert after["min_100k_dummy_idle_2core"] == pytest.approx(100_000 / 100 / 60, abs=1e-3)
    bound = 1 / (0.1 + 0.9 / 2)  # env share 0.9 over two cores, the rest serial
    assert after["min_100k_subproc_idle_2core_bound"] == pytest.approx(
        100_000 / 100 / bound / 60, abs=1e-3)
