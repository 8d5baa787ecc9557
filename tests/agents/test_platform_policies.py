"""Baselines over the shared platform (agents.policies.platform): what each changes in the
scenario, the threshold rule's decisions, and a short run of each."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agents.evaluation.policy_run import run_policy
from agents.policies import make_policy
from kisim.core.config import load_scenario, override
from kisim.core.errors import KisimError
from kisim.env.environment import DEFAULT_SCENARIO
from kisim.env.platform_view import PlatformView, platform_context

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "configs" / "scenarios" / "platform" / "benchmark" / "platform-mixed.yaml"


@pytest.fixture(scope="module")
def sc():
    return override(load_scenario(BENCH), "test", duration_s=90.0)


def test_scenario_transforms(sc) -> None:
    hpa = make_policy("platform-hpa:0.8").scenario(sc).platform
    assert {m.hpa_target for m in hpa.models.values()} == {0.8}
    assert make_policy("platform-hpa").scenario(sc) is sc  # the status quo as it stands
    q = make_policy("platform-quota").scenario(sc).platform
    assert all(t.borrowing_limit_cpu == 0 and t.borrowing_limit_gpu == 0
               for t in q.tenants.values())  # fmt: skip
    ps = make_policy("platform-prescaled:0.4").scenario(sc).platform.prescaler
    assert ps.enabled and ps.target_util == 0.4
    st = make_policy("platform-static:5").scenario(sc).platform
    # every model fixed (no HPA) at 5, clamped to its bounds (detect 4, segment 3, embed 6)
    assert {m: s.replicas for m, s in st.models.items()} == {"detect": 4, "segment": 3, "embed": 5}
    assert all(s.hpa_target is None for s in st.models.values())


def test_platform_policies_refuse_a_single_service_scenario() -> None:
    sc = load_scenario(DEFAULT_SCENARIO)
    with pytest.raises(KisimError, match="has no platform section"):
        make_policy("platform-hpa:0.5").scenario(sc)
    with pytest.raises(KisimError, match="must lie in"):
        make_policy("platform-threshold:2")


def _env_with(sc, state_after: dict[str, float]) -> SimpleNamespace:  # type: ignore[no-untyped-def]
    pc = platform_context(sc)
    zero = dict.fromkeys(state_after, 0.0)
    view = PlatformView.first(pc, zero).next(state_after, 30.0)
    return SimpleNamespace(state=SimpleNamespace(platform=view), hold=lambda: None)


def _state(sc, **per_model: tuple[float, float, float]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """(answered, within SLO, busy seconds) per model, 1 ready replica each."""
    out: dict[str, float] = {}
    for m in platform_context(sc).models:
        a, ok, busy = per_model.get(m, (0.0, 0.0, 0.0))
        out |= {f"model_{m}_answered": a, f"model_{m}_within_slo": ok, f"model_{m}_rejected": 0.0,
                f"model_{m}_busy_s": busy, f"model_{m}_ready": 1.0, f"model_{m}_queue": 0.0}
    return out


def test_threshold_scales_a_missing_model_up_and_an_idle_one_down(sc) -> None:
    pol = make_policy("platform-threshold:0.05:0.7:0.3")
    pol.reset(sc)
    # detect misses 10 % -> up; segment busy 80 % -> up; embed idle and on time -> down
    pol.env = _env_with(sc, _state(sc, detect=(100, 90, 10), segment=(100, 100, 24),
                                   embed=(100, 100, 3)))  # fmt: skip
    a = pol.act(np.zeros(1), object(), 300.0)
    assert list(a) == [2, 2, 0, 1, 1, 1, 0, 0]
    # embed went down at t=300: not again within the 180 s cooldown
    a = pol.act(np.zeros(1), object(), 400.0)
    assert a[2] == 1


@pytest.mark.parametrize("policy", ["platform-hpa", "platform-quota", "platform-prescaled",
                                    "platform-static:2", "platform-threshold"])
def test_baselines_run_on_the_platform(sc, policy) -> None:  # type: ignore[no-untyped-def]
    run = run_policy(policy, sc, 4)
    s = run.episode.summary
    assert run.steps == 3 and np.isfinite(run.reward)
    assert s["platform_cost"] > 0 and 0 <= s["platform_slo_attainment"] <= 1
