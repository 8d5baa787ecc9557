"""Rules with a scheduled floor: an operator who knows when the load comes pre-scales by the clock.

Where the load has set times - a push notification at 09:00, the evening peak of a day - an
operator does not wait for the autoscaler to see it: a schedule raises the service's floor
ahead of each known rise and lowers it after, and the reactive autoscaler handles the rest.
Two ways this is deployed, each an opponent here:

* ``cron-kpa`` - Knative: a CronJob patching the revision's ``autoscaling.knative.dev/
  min-scale``, which the PodAutoscaler applies after the KPA's own decision
  (``desired = max(KPA's, min-scale)``); the KPA of `agents.policies.kpa`, unchanged, every 2 s;
* ``cron-keda`` - KEDA: a ScaledObject with two triggers, the ``prometheus`` request-rate
  scaler of `agents.policies.metric_hpa.KEDA` and a ``cron`` trigger whose desiredReplicas is
  the floor; the HPA takes the larger of the two metrics' proposals, then its stabilisation
  window and limits, every 15 s.

The floor per pool is written from the scenario's own traffic pattern, read with seed 0 - the
load *curve* the operator wrote the schedule from, not the run's Poisson arrivals:

    floor(t) = ceil(max level over [t, t + lead] x share / (FLOOR_UTIL x nominal capacity))

where ``lead`` = the pool's mean cold start (`agents.policies.params.startup_s`) + the rule's
period + LEAD_S, ``share`` the pool's part of the traffic under the Service's routing with its
desired pods (as `agents.policies.predictive`), and the nominal capacity that of
`agents.policies.params.nominal_rps`. The floor follows the whole curve, every rise and wave,
not a handful of cron entries: the strongest schedule an operator could write (an upper bound
on cron pre-scaling). It needs an open-loop scenario (the pattern's level is then req/s). The
benchmark enters these rules only where the load's timing is knowable in advance
(`agents.benchmark.opponents.SCHEDULED_PATTERNS`): a flash crowd is unannounced by
definition, and a replayed trace is the test itself.

``cron-kpa[:UTIL[:STABLE_S[:FLOOR_UTIL[:LEAD_S]]]]`` (defaults 0.7, 60 s, 0.8, 0 s);
``cron-keda[:UTIL[:DOWN_STAB_S[:FLOOR_UTIL[:LEAD_S]]]]`` (defaults 0.7, the scenario's, 0.8, 0 s).

``cron[:FLOOR_UTIL[:LEAD_S]]`` is the schedule alone, as an env-driven policy in the
``min-scale`` preset: once per agent step it writes the floor of the scenario's
``env.autoscaler`` for each fifth of the step. It is the teacher PPO in that preset imitates
before it learns (configs/train/suite/cpu-fleet-min-scale.yaml).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from agents.policies.base import Policy
from agents.policies.kpa import KPA, TICK_S
from agents.policies.metric_hpa import DOWN, KEDA
from agents.policies.params import Field, help_of, nominal_rps, parse_params, startup_s
from kisim.core.config import Scenario
from kisim.core.errors import KisimError
from kisim.core.patterns import make_pattern
from kisim.core.routing import RouteTable
from kisim.core.window import Window
from kisim.env.actions import PARTS, min_scale_action

STEP_S = 1.0  # resolution at which the curve is read
FLOOR_UTIL = Field("floor_util", 0.8, 0.0, 2.0)
LEAD = Field("lead_s", 0.0, 0.0, 3600.0, lo_incl=True)


def sliding_max(levels: np.ndarray, width: int) -> np.ndarray:
    """``out[k] = max(levels[k : k + width + 1])`` (the window clipped at the end)."""
    out = levels.copy()
    for j in range(1, width + 1):
        np.maximum(out[:-j], levels[j:], out=out[:-j])
    return out


class Schedule:
    """The floor per pool over an episode, from the scenario's load curve (module doc)."""

    def __init__(self, sc: Scenario, routes: RouteTable, pools: Iterable[str], period_s: float,
                 floor_util: float, lead_s: float, policy: str) -> None:  # fmt: skip
        if sc.traffic.mode != "open":
            raise KisimError(f"policy {policy}: scenario {sc.name} is closed-loop; the floor "
                             "is written from an open-loop pattern's req/s")  # fmt: skip
        spec = sc.traffic.pattern
        curve = make_pattern(spec.name, spec.params, 0)
        self.routes = routes  # the policy's own
        self.ahead: dict[str, np.ndarray] = {}
        self.per_pod: dict[str, float] = {}
        for pool in pools:
            lead = startup_s(sc, pool) + period_s + lead_s
            n = math.ceil((sc.duration_s + lead) / STEP_S) + 1
            levels = np.array([curve.level(k * STEP_S) for k in range(n)])
            self.ahead[pool] = sliding_max(levels, math.ceil(lead / STEP_S))
            self.per_pod[pool] = floor_util * nominal_rps(sc, pool)

    def floors(self, w: Window, t: float) -> dict[str, int]:
        """The schedule's floor per pool at `t`."""
        return self.floors_at(w.placement, {p: r.desired for p, r in w.pools.items()}, t)

    def floors_at(self, placement: str, desired: dict[str, int], t: float) -> dict[str, int]:
        """The floor per pool at `t` with this placement and these desired pods."""
        shares = self.routes.shares(placement, desired)
        out = {}
        for pool, ahead in self.ahead.items():
            level = float(ahead[min(int(t / STEP_S), len(ahead) - 1)])
            out[pool] = math.ceil(level * shares.get(pool, 0.0) / self.per_pod[pool] - 1e-9)
        return out


class CronKPA(KPA):
    """``cron-kpa``: the KPA with a min-scale schedule (module doc)."""

    name = "cron-kpa"
    fields = (Field("util", 0.7, 0.0, 1.0), Field("stable_s", 60.0, 2 * TICK_S, 3600.0,
              lo_incl=True), FLOOR_UTIL, LEAD)  # fmt: skip
    arg_help = help_of(fields)

    def __init__(self, arg: str | None = None) -> None:
        p = parse_params(self.name, arg, self.fields)
        super().__init__(f"{p['util']:g}:{p['stable_s']:g}")
        self.arg = arg
        self.floor_util, self.lead_s = p["floor_util"], p["lead_s"]

    def reset(self, scenario: Scenario) -> None:
        super().reset(scenario)
        self.schedule = Schedule(scenario, self.routes, self.pools, TICK_S, self.floor_util,
                                 self.lead_s, self.name)  # fmt: skip

    def floors(self, w: Window, t: float) -> dict[str, int]:
        return self.schedule.floors(w, t)


class CronKEDA(KEDA):
    """``cron-keda``: KEDA's request-rate scaler beside a cron trigger (module doc)."""

    name = "cron-keda"
    fields = (Field("util", 0.7, 0.0, 2.0), DOWN, FLOOR_UTIL, LEAD)
    arg_help = help_of(fields)

    def reset(self, scenario: Scenario) -> None:
        super().reset(scenario)
        self.schedule = Schedule(scenario, self.routes, self.hpas, self.period_s,
                                 self.p["floor_util"], self.p["lead_s"], self.name)  # fmt: skip

    def floors(self, w: Window, t: float) -> dict[str, int]:
        return self.schedule.floors(w, t)


class Cron(Policy):
    """``cron``: the schedule alone, writing the min-scale preset's entries each step (module doc):
    the floor of each fifth of the step is the schedule's at its start, written with ``lead`` =
    cold start + a fifth of the step + LEAD_S (so each covers its fifth) - with a 10-s step and
    the KPA's 2-s tick, `cron-kpa`'s floor at each tick."""

    name = "cron"
    action = "min-scale"
    fields = (FLOOR_UTIL, LEAD)
    arg_help = help_of(fields)

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        p = parse_params(self.name, arg, self.fields)
        self.floor_util, self.lead_s = p["floor_util"], p["lead_s"]

    def reset(self, scenario: Scenario) -> None:
        self.tick_s = scenario.env.step_s / PARTS
        self.schedule = Schedule(scenario, RouteTable(scenario), scenario.pool_names, self.tick_s,
                                 self.floor_util, self.lead_s, self.name)  # fmt: skip

    def act(self, obs: np.ndarray, window: Window | None, t: float) -> Any:
        assert self.env is not None and self.env.state is not None
        st = self.env.state
        placement = self.placement(t)
        fifths = [self.schedule.floors_at(placement, st.desired, t + j * self.tick_s)
                  for j in range(PARTS)]  # fmt: skip
        return min_scale_action(self.env.ctx, fifths, placement)

    def placement(self, t: float) -> str:
        """The traffic split written at `t`: the current one (the rule keeps its setup's)."""
        assert self.env is not None and self.env.state is not None
        return self.env.state.placement


__all__ = ["Cron", "CronKEDA", "CronKPA", "Schedule", "sliding_max"]
