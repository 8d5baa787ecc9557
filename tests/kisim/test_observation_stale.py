"""The ``*-stale`` observation presets: what a policy sees when monitoring fails."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from kisim.core.config import load_scenario, override
from kisim.core.window import Window
from kisim.env.context import EnvState, build_context
from kisim.env.environment import DEFAULT_SCENARIO, KisimEnv
from kisim.env.observation import OBSERVATIONS, STALE_HORIZON_S


def window(t_end: float, **kw: float) -> Window:
    d = dict(t_start=t_end - 30.0, t_end=t_end, load_level=100.0, offered=3000, served=3000,
             errors=0, throughput_rps=100.0, latency_mean_ms=30.0, latency_p50_ms=28.0,
             latency_p95_ms=50.0, latency_p99_ms=70.0, queue_wait_ms=2.0, slo_violations=0,
             cpu_util=0.3, mem_util=0.4, gpu_util=0.2, gpu_desired=1, gpu_ready=1, gpu_pending=0,
             cpu_desired=1, cpu_ready=1, cpu_pending=0, gpu_replica_s=30.0, cpu_replica_s=30.0,
             pending_pod_s=0.0, queue_length=0, mean_batch_size=1.2,
             placement="balanced")  # fmt: skip
    d.update(kw)
    return Window.from_dict(d)


@pytest.fixture(scope="module")
def base():  # type: ignore[no-untyped-def]
    return load_scenario(DEFAULT_SCENARIO)


@pytest.mark.parametrize("name", ["default-stale", "extended-stale"])
def test_missing_metrics_keep_the_last_value_and_age(base, name: str) -> None:  # type: ignore
    """Missing utilisations (NaN with Ready pods) keep their last value; `metrics_stale` grows
    with the time since they were complete, reaching 1 at the 5-min lookback delta."""
    ctx = build_context(base)
    plain = OBSERVATIONS[name.removesuffix("-stale")](ctx)
    obs = OBSERVATIONS[name](ctx)
    st = EnvState.initial(ctx)
    assert obs.features[-1] == "metrics_stale" and len(obs.features) == len(plain.features) + 1
    first = obs.observe(window(30.0), st)
    assert np.array_equal(first[:-1], plain.observe(window(30.0), st)) and first[-1] == 0.0
    nan = {"cpu_util": math.nan, "mem_util": math.nan, "gpu_util": math.nan}
    gone = obs.observe(window(90.0, **nan), st)
    i = {f: k for k, f in enumerate(obs.features)}
    assert gone[i["cpu_util"]] == pytest.approx(0.3) and gone[i["mem_util"]] == pytest.approx(0.4)
    assert gone[i["gpu_util"]] == pytest.approx(0.2)
    assert gone[-1] == pytest.approx(60.0 / STALE_HORIZON_S)
    assert plain.observe(window(90.0, **nan), st)[i["cpu_util"]] == 0.0  # the plain preset: 0
    assert obs.observe(window(30.0 + STALE_HORIZON_S + 60, **nan), st)[-1] == 1.0
    assert obs.observe(window(500.0), st)[-1] == 0.0  # back
    obs.observe(None, st)  # a new episode forgets
    assert obs.observe(window(30.0, **nan), st)[i["cpu_util"]] == 0.0


def test_nothing_running_is_not_stale(base) -> None:  # type: ignore[no-untyped-def]
    """NaN utilisations with no Ready pod are "nothing is used", not missing metrics."""
    ctx = build_context(base)
    obs = OBSERVATIONS["default-stale"](ctx)
    st = EnvState.initial(ctx)
    obs.observe(window(30.0), st)
    v = obs.observe(window(60.0, cpu_util=math.nan, mem_util=math.nan, gpu_util=math.nan,
                           gpu_ready=0, cpu_ready=0), st)  # fmt: skip
    assert v[0] == 0.0 and v[-1] == 0.0


def test_stale_preset_on_a_metrics_outage_passes_the_checkers(base) -> None:  # type: ignore
    """The env with the stale preset on a scenario whose scrapes fail: valid observations
    every step, `metrics_stale` > 0 during the outage."""
    from gymnasium.utils.env_checker import check_env

    sc = override(base, "test", **{
        "duration_s": 300.0, "env.observation": "default-stale",
        "faults": {"events": [
            {"kind": "scrape_failure", "at_s": 60, "duration_s": 180}]}})  # fmt: skip
    env = KisimEnv(sc)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    stale = []
    for _ in range(10):
        obs, _, _, trunc, _ = env.step(env.action_space.sample() * 0 + 2)
        assert env.observation_space.contains(obs)
        stale.append(float(obs[-1]))
        if trunc:
            break
    assert max(stale) > 0.0 and stale[-1] == 0.0
