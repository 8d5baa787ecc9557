"""Rules with a scheduled floor (`agents.policies.cron`): the floor by hand from the load curve,
that it pre-scales where the rule alone waits, KEDA's two triggers, and where the benchmark
enters them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from agents.benchmark.opponents import RULES, SCHEDULED, family_rules, scheduled
from agents.evaluation.policy_run import run_policy
from agents.policies import make_policy
from agents.policies.cron import sliding_max
from agents.policies.kpa import TICK_S
from agents.policies.metric_hpa import _at_least
from agents.policies.params import nominal_rps, startup_s
from kisim.core.config import load_scenario
from kisim.core.errors import KisimError
from kisim.core.hpa import ReplicaComputeError
from kisim.core.prepare import prepare
from kisim.env.environment import DEFAULT_SCENARIO

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "configs" / "scenarios" / "suite"


@pytest.fixture(scope="module")
def first_burst():
    """cpu-fleet's first 240 s: 600 req/s, then 1,800 req/s from 210 s (a 10-s rise from 200)."""
    return prepare(SUITE / "cpu-fleet.yaml", None, None, 240.0)


def test_sliding_max_by_hand():
    x = np.array([1.0, 3.0, 2.0, 0.0, 5.0, 1.0])
    assert sliding_max(x, 0).tolist() == x.tolist()
    assert sliding_max(x, 2).tolist() == [3.0, 3.0, 5.0, 5.0, 5.0, 1.0]


def test_spec_fields_and_errors():
    p = make_policy("cron-kpa:0.9:10:0.6:30")
    assert (p.utilisation, p.stable_s, p.floor_util, p.lead_s) == (0.9, 10.0, 0.6, 30.0)
    d = make_policy("cron-kpa")
    assert (d.utilisation, d.stable_s, d.floor_util, d.lead_s) == (0.7, 60.0, 0.8, 0.0)
    k = make_policy("cron-keda:0.5:30:0.6:15")
    assert k.p == {"util": 0.5, "down_stab_s": 30.0, "floor_util": 0.6, "lead_s": 15.0}
    assert k.down_given
    for bad, msg in (("cron-kpa:0.7:1", "stable_s"), ("cron-kpa:0.7:60:0", "floor_util"),
                     ("cron-kpa:1:2:3:4:5", "at most 4 values"),
                     ("cron-keda:0.5:30:0.6:-1", "lead_s")):  # fmt: skip
        with pytest.raises(KisimError, match=msg):
            make_policy(bad)


@pytest.mark.parametrize("spec", ["cron-kpa", "cron-keda"])
def test_closed_loop_scenario_is_refused(spec):
    with pytest.raises(KisimError, match="closed-loop"):
        make_policy(spec).reset(load_scenario(DEFAULT_SCENARIO))


def test_floor_is_the_curve_ahead_by_the_cold_start(first_burst):
    sc = first_burst
    pol = make_policy("cron-kpa:0.7:60:0.8:0")
    pol.reset(sc)
    lead = startup_s(sc, "cpu") + TICK_S
    ahead = pol.schedule.ahead["cpu"]
    # 600 req/s until 200 s, then linear to 1,800 at 210: the floor sees 1,800 from 210 - lead
    assert ahead[150] == pytest.approx(600.0)
    assert ahead[210 - math.ceil(lead)] == pytest.approx(1800.0)
    assert ahead[math.floor(200 - lead) - 1] == pytest.approx(600.0)
    assert pol.schedule.per_pod["cpu"] == pytest.approx(0.8 * nominal_rps(sc, "cpu"))


def test_pods_are_asked_for_before_the_burst_where_kpa_waits(first_burst):
    sc = first_burst
    per_pod = 0.8 * nominal_rps(sc, "cpu")
    want = math.ceil(1800.0 / per_pod)
    lead = startup_s(sc, "cpu") + TICK_S

    def asked_by(spec: str, t: float) -> int:
        pol = make_policy(spec)
        run_policy(pol, sc, 3)
        return max(n for s, _, _, n in pol.log if s <= t)

    # by the first tick at which the curve ahead reaches the burst's top, the schedule has
    # asked for all of the burst's pods; the KPA, a few seconds into the rise, has not
    t = math.ceil((210 - lead) / TICK_S) * TICK_S
    assert t < 210
    assert asked_by("cron-kpa:0.7:60:0.8:0", t) >= want
    assert asked_by("kpa:0.7:60", t) < want
    # KEDA syncs every 15 s and its cron trigger looks a period further ahead: at the last
    # sync before the rise (195 s) the HPA has moved towards the floor as far as its scale-up
    # policy lets it (Kubernetes' default: double, or +4 pods, per period), at the next it is
    # there; KEDA's rate trigger alone, with a one-minute rate, is still short of it
    assert 195.0 + 15.0 + startup_s(sc, "cpu") >= 210
    assert asked_by("cron-keda:0.7:300:0.8:0", 195.0) > asked_by("keda:0.7:300", 195.0)
    assert asked_by("cron-keda:0.7:300:0.8:0", 210.0) >= want
    assert asked_by("keda:0.7:300", 225.0) < want


def test_two_triggers_take_the_larger_proposal():
    assert _at_least(lambda cur: 3, 5)(4) == 5
    assert _at_least(lambda cur: 7, 5)(4) == 7

    def broken(cur: int) -> int:
        raise ReplicaComputeError("no metric")

    assert _at_least(broken, 5)(4) == 5  # the other trigger's scale-up goes through
    with pytest.raises(ReplicaComputeError):
        _at_least(broken, 3)(4)  # no scale-up asked: the error stands


def test_entered_only_where_the_load_is_scheduled():
    expected = {"cpu-fleet": True, "diurnal": True, "hetero": True, "gpu-fleet": True,
                "flash-crowd": False, "trace": False}  # fmt: skip
    for name, expect in expected.items():
        sc = prepare(SUITE / f"{name}.yaml", None, None, None)
        assert scheduled(sc) is expect, name
        assert family_rules(sc) == (RULES + SCHEDULED if expect else RULES), name
    assert not set(SCHEDULED) & set(RULES)
