"""The tuned opponents: each policy's decision rule against a sequence computed by hand from
its upstream algorithm (Ray Serve, the HPA on a Pods / External metric, Holt's method), the
spec parameters, and short twin episodes."""

from __future__ import annotations

import math

import pytest

from agents.evaluation.policy_run import run_policy
from agents.policies import make_policy
from agents.policies.metric_hpa import (
    _ProposalHPA,
    external_per_pod_replicas,
    plain_metric_replicas,
)
from agents.policies.predictive import HoltWinters
from agents.policies.ray_serve import PoolRay, apply_scaling_factors
from kisim.core.config import HPAConfig, load_scenario, override
from kisim.core.errors import KisimError
from kisim.core.hpa import PodSample
from kisim.env.environment import DEFAULT_SCENARIO

SPIKE = {"name": "spike", "params": {"base": 60, "peak": 400, "start_s": 30, "rise_s": 5,
                                     "hold_s": 50, "fall_s": 5}}  # fmt: skip


@pytest.fixture(scope="module")
def short():
    return override(load_scenario(DEFAULT_SCENARIO), "test",
                    **{"traffic.pattern": SPIKE, "duration_s": 150.0})  # fmt: skip


def pod(name: str, phase: str = "Running", deleting: bool = False) -> PodSample:
    return PodSample(name, phase, deleting, phase == "Running", 0.0, 0.0, 1.0, 0.0, 0.0, 15.0)


# ----------------------------------------------------------------------------- Ray Serve


def test_ray_scaling_factors_by_hand():
    assert apply_scaling_factors(7.0, 3, 0.5, 1.0) == 5  # ceil(3 + 0.5 x 4)
    assert apply_scaling_factors(2.5, 3, 1.0, 0.1) == 3  # ceil(2.95); ceil(2.5) = 3, not stuck
    assert apply_scaling_factors(1.2, 3, 1.0, 0.1) == 2  # ceil(2.82) = 3 stuck -> 3 - 1
    assert apply_scaling_factors(0.5, 3, 1.0, 1.0) == 1  # ceil(0.5)


def test_ray_decision_counters_by_hand():
    # target 2 ongoing per replica; delays 4 s at a 2 s tick: act on the 3rd decision in a row
    r = PoolRay(target=2.0, up_delay_s=4.0, down_delay_s=4.0, up_factor=1.0, down_factor=1.0,
                min_replicas=1, max_replicas=10, look_back_n=1)  # fmt: skip
    # 6 ongoing on 1 running replica: desired 3 (ceil(1 + (3 - 1)))
    assert [r.decide(6.0, 1, 1) for _ in range(3)] == [1, 1, 3]
    assert r.counter == 0
    # 1 ongoing on 3 replicas: desired 0.5 -> ceil(0.5) = 1, after three decisions
    assert [r.decide(1.0, 3, 3) for _ in range(3)] == [3, 3, 1]
    # an up decision resets a running down count
    assert r.decide(1.0, 3, 3) == 3 and r.counter == -1
    assert r.decide(6.0, 3, 3) == 3 and r.counter == 0  # 6/2 = 3 = target: no change, reset
    # cold start: no running replica, requests waiting -> max(ceil(1 x factor), target)
    assert r.decide(5.0, 0, 0) == 1


def test_ray_look_back_average():
    r = PoolRay(2.0, 0.0, 0.0, 1.0, 1.0, 1, 10, look_back_n=2)
    # counter > int(0 / 2) = 0 acts at once; mean of (4, 8) = 6 -> desired 3
    assert r.decide(4.0, 1, 1) == 2
    assert r.decide(8.0, 2, 2) == 3


# ----------------------------------------------------------------------------- HPA, custom


def test_plain_metric_replicas_by_hand():
    a, b, c = pod("a"), pod("b"), pod("c")
    # avg(100, 300) = 200 us over target 50 -> ratio 4 -> ceil(4 x 2 ready) = 8
    assert plain_metric_replicas(2, 50, 0.1, [a, b], {"a": 100, "b": 300}) == 8
    # avg 53 -> ratio 1.06 within the 10 % tolerance -> unchanged
    assert plain_metric_replicas(2, 50, 0.1, [a, b], {"a": 52, "b": 54}) == 2
    # c has no value (missing); ratio 15/50 < 1, so c counts as the target:
    # (10 + 20 + 50) * 1000 // 3 = 26666 -> 0.53332 -> ceil(1.59996) = 2
    assert plain_metric_replicas(3, 50, 0.1, [a, b, c], {"a": 10, "b": 20}) == 2
    # c Pending (unready) while scaling up counts as 0: 200000 // 3 = 66666 -> ceil(3.99996)
    pend = pod("c", "Pending")
    assert plain_metric_replicas(3, 50, 0.1, [a, b, pend], {"a": 100, "b": 100}) == 4
    # a deleting pod is ignored
    assert plain_metric_replicas(2, 50, 0.1, [a, pod("b", deleting=True)],
                                 {"a": 100, "b": 900}) == 2  # fmt: skip


def test_external_per_pod_replicas_by_hand():
    assert external_per_pod_replicas(2, 100, 0.1, 250) == 3  # 250 / (100 x 2) = 1.25
    assert external_per_pod_replicas(2, 100, 0.1, 205) == 2  # 1.025: within tolerance
    assert external_per_pod_replicas(4, 100, 0.1, 90) == 1  # ceil(0.9)


def test_metric_hpa_keeps_the_behaviour():
    """The proposal goes through the HPA's stabilisation and rate limits (defaults: up +4 pods
    or +100 % per 15 s, down stabilisation 300 s)."""
    h = _ProposalHPA(HPAConfig(), 1, 10)
    h.proposal = lambda cur: 9
    assert h.sync(15.0, 1, []) == 5  # max(1 + 4, 2 x 1)
    h.proposal = lambda cur: 1
    # down: current clamped to at most the highest recommendation of the last 300 s (9)
    assert h.sync(30.0, 5, []) == 5
    assert h.sync(314.0, 5, []) == 5  # (14 s, 314 s] still holds the 9 of 15 s
    assert h.sync(316.0, 5, []) == 1  # (16 s, 316 s] holds only 1s


# ----------------------------------------------------------------------------- predictive


def test_holt_damped_trend_by_hand():
    m = HoltWinters(alpha=0.5, beta=0.3, phi=0.9)
    m.update(10.0)
    m.update(20.0)
    # level = .5 x 20 + .5 x (10 + .9 x 0) = 15; trend = .3 x (15 - 10) + .7 x .9 x 0 = 1.5
    assert m.level == pytest.approx(15.0) and m.trend == pytest.approx(1.5)
    assert m.forecast(1) == pytest.approx(15 + 0.9 * 1.5)
    assert m.forecast(2) == pytest.approx(15 + (0.9 + 0.81) * 1.5)


def test_holt_winters_seasonal_by_hand():
    m = HoltWinters(alpha=0.5, beta=0.0, phi=1.0, gamma=0.5, m=2)
    for y in (10.0, 20.0, 10.0, 20.0):  # two seasons: indices from the first, mean 15
        m.update(y)
    assert m.season == [-5.0, 5.0]
    lvl, s = m.level, m.season[-2]
    m.update(10.0)  # season index -5 applies
    assert m.level == pytest.approx(0.5 * (10 - s) + 0.5 * lvl)


def test_predictive_plans_ahead_and_waits_to_scale_down(short):
    p = make_policy("predictive:0.5:60")
    p.reset(short)
    cap = p.per_replica["cpu"]
    shares = {"gpu": 0.0, "cpu": 1.0}
    first = p.plan(3.2 * cap, shares, {"gpu": 0, "cpu": 1}, 15.0)
    assert first["cpu"] == 4 and first["gpu"] == 0  # ceil(3.2); a pool off stays off
    assert p.plan(0.1 * cap, shares, {"gpu": 0, "cpu": 4}, 30.0)["cpu"] == 4  # within 60 s
    low = [p.plan(0.1 * cap, shares, {"gpu": 0, "cpu": 4}, t)["cpu"] for t in (45.0, 75.0, 90.0)]
    assert low[-1] < 4


# ----------------------------------------------------------------------------- specs, runs


def test_specs_and_errors():
    assert make_policy("hpa:0.5:60").behaviour == {"down_stab_s": 60.0}
    assert make_policy("ray:4::60").p["up_delay_s"] == 30.0  # empty keeps the default
    assert make_policy("kpa:0.5:30").stable_s == 30.0
    assert make_policy("threshold:0.6").up_p95 == 0.6
    for bad, msg in (("ray:1:2:3:4:5:6", "at most 5 values"), ("keda:0", "must lie in"),
                     ("triton-hpa:x", "is not a number"), ("fixed", "needs pool=N"),
                     ("fixed:gpu=x", "not an integer"), ("kpa:0.7:1", "stable_s")):  # fmt: skip
        with pytest.raises(KisimError, match=msg):
            make_policy(bad)


def test_hpa_behaviour_reaches_the_scenario(short):
    sc = make_policy("hpa:0.5:60:15").scenario(short)
    assert sc.controller.hpa.scale_down_stabilization_s == 60.0
    assert sc.controller.hpa.scale_up_stabilization_s == 15.0


def test_fixed_transform(short):
    sc = make_policy("fixed:cpu=3").scenario(short)
    assert (sc.pools["cpu"].replicas, sc.pools["gpu"].replicas, sc.controller.name) == (
        3, 0, "static")
    with pytest.raises(KisimError, match="no pool 'x'"):
        make_policy("fixed:x=1").scenario(short)


@pytest.mark.parametrize("spec", ["triton-hpa", "keda:0.2:60", "ray:4:0:60", "predictive:0.2"])
def test_episodes_scale_up_on_the_spike(short, spec):
    pol = make_policy(spec)
    run = run_policy(pol, short, 3)
    assert run.steps == 5
    assert run.episode.summary["scaling_actions"] >= 1
    assert max(w.desired_total for w in run.episode.windows) > 2


def test_triton_metric_is_the_prometheus_view(short):
    pol = make_policy("triton-hpa")
    run_policy(pol, short, 3)
    vals = [m for t, _, m, _ in pol.log if t >= 45.0]
    assert vals and all(math.isfinite(v) and v > 0 for v in vals)
