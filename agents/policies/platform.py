"""Baselines over a scenario's shared platform (docs/platform.md, "Policies on the platform").

In-cluster ones change the scenario's ``platform:`` section and then only watch (the ``none``
action: the platform's own controllers act, the front door keeps its controller):

* ``platform-hpa[:TARGET]`` - the status quo: every model's HPA (busy fraction, 15 s sync,
  tolerance 0.1, 300 s scale-down window: `twin.platform.serving`) at TARGET (default the
  scenario's), with the Cluster Autoscaler and the priority classes;
* ``platform-quota[:TARGET]`` - the same with KAI-style static quotas: every tenant's
  borrowing limits 0 (Kueue ``borrowingLimit``), nothing borrowed, nothing reclaimed;
* ``platform-prescaled[:UTIL]`` - the status quo plus the predictive pre-scaler
  (`kisim.core.platform.PrescalerSpec`: the scenario's own pattern 240 s ahead, a *perfect*
  forecast) aiming at busy fraction UTIL;
* ``platform-static[:N]`` - no model autoscaling: every model at N replicas (clamped to its
  bounds; default its initial replicas); the Cluster Autoscaler still runs.

Env-driven (the ``platform`` action preset, `kisim.env.platform_presets`):

* ``platform-threshold[:UP_MISS[:BUSY_HIGH[:BUSY_LOW]]]`` - per model, every step: +1 replica
  when the step's missed share exceeds UP_MISS or its busy fraction BUSY_HIGH; -1 when the
  missed share is under UP_MISS / 4 and the busy fraction under BUSY_LOW, at most once per
  180 s after any change of that model (the HPA's habit of scaling down slowly). Node pools
  and tenant queues are left to the Cluster Autoscaler and admission as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.policies.base import InClusterPolicy, Policy
from agents.policies.params import Field, help_of, parse_params
from kisim.core.config import Scenario, override
from kisim.core.errors import KisimError
from kisim.core.window import Window


def _platform(sc: Scenario, policy: str) -> Any:
    if sc.platform is None:
        raise KisimError(f"policy {policy}: scenario {sc.name} has no platform section")
    return sc.platform


class _HPAKnob(InClusterPolicy):
    fields = (Field("target", 0.6, 0.0, 1.0),)
    arg_help = help_of(fields)

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        self.target = None if arg is None else parse_params(self.name, arg, self.fields)["target"]

    def _targets(self, sc: Scenario) -> dict[str, object]:
        p = _platform(sc, self.name)
        if self.target is None:
            return {}
        return {f"platform.models.{m}.hpa_target": self.target
                for m, spec in p.models.items() if spec.hpa_target is not None}  # fmt: skip


class PlatformHPA(_HPAKnob):
    """``platform-hpa[:TARGET]``: the status quo (module doc)."""

    name = "platform-hpa"

    def scenario(self, sc: Scenario) -> Scenario:
        d = self._targets(sc)
        return override(sc, f"policy {self.name}", **d) if d else sc


class PlatformQuota(_HPAKnob):
    """``platform-quota[:TARGET]``: KAI-style static quotas (module doc)."""

    name = "platform-quota"

    def scenario(self, sc: Scenario) -> Scenario:
        p = _platform(sc, self.name)
        d = self._targets(sc)
        for t in p.tenants:
            d[f"platform.tenants.{t}.borrowing_limit_cpu"] = 0.0
            d[f"platform.tenants.{t}.borrowing_limit_gpu"] = 0.0
        return override(sc, f"policy {self.name}", **d)


class PlatformPrescaled(InClusterPolicy):
    """``platform-prescaled[:UTIL]``: the perfect-forecast pre-scaler (module doc)."""

    name = "platform-prescaled"
    fields = (Field("util", 0.6, 0.0, 1.0),)
    arg_help = help_of(fields)

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        self.util = parse_params(self.name, arg, self.fields)["util"]

    def scenario(self, sc: Scenario) -> Scenario:
        _platform(sc, self.name)
        return override(sc, f"policy {self.name}", **{"platform.prescaler.enabled": True,
                                                      "platform.prescaler.target_util": self.util})


class PlatformStatic(InClusterPolicy):
    """``platform-static[:N]``: fixed model replicas (module doc)."""

    name = "platform-static"
    fields = (Field("replicas", 1, 0, 64, integer=True, lo_incl=True),)
    arg_help = help_of(fields)

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        self.n = None if arg is None else int(parse_params(self.name, arg, self.fields)["replicas"])

    def scenario(self, sc: Scenario) -> Scenario:
        p = _platform(sc, self.name)
        d: dict[str, object] = {}
        for m, spec in p.models.items():
            d[f"platform.models.{m}.hpa_target"] = None
            if self.n is not None:
                d[f"platform.models.{m}.replicas"] = min(max(self.n, spec.min_replicas),
                                                         spec.max_replicas)  # fmt: skip
        return override(sc, f"policy {self.name}", **d)


class PlatformThreshold(Policy):
    """``platform-threshold[:UP_MISS[:BUSY_HIGH[:BUSY_LOW]]]`` (module doc)."""

    name = "platform-threshold"
    action = "platform"
    fields = (Field("up_miss", 0.05, 0.0, 1.0), Field("busy_high", 0.7, 0.0, 1.0),
              Field("busy_low", 0.3, 0.0, 1.0, lo_incl=True))  # fmt: skip
    arg_help = help_of(fields)
    cooldown_down_s = 180.0

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        v = parse_params(self.name, arg, self.fields)
        self.up_miss, self.busy_high, self.busy_low = v["up_miss"], v["busy_high"], v["busy_low"]

    def reset(self, scenario: Scenario) -> None:
        _platform(scenario, self.name)
        self.last: dict[str, float] = {}

    def act(self, obs: np.ndarray, window: Window | None, t: float) -> Any:
        env = self.env
        assert env is not None and env.state is not None
        view = env.state.platform
        if window is None or view is None:
            return env.hold()
        moves: dict[str, int] = {}
        for m in view.pc.models:
            miss, busy = view.miss(m), view.busy(m)
            if miss > self.up_miss or busy > self.busy_high:
                moves[m] = 1
                self.last[m] = t
            elif (miss < self.up_miss / 4 and busy < self.busy_low
                  and t - self.last.get(m, -1e18) >= self.cooldown_down_s):  # fmt: skip
                moves[m] = -1
                self.last[m] = t
        pc = view.pc
        return np.array([moves.get(m, 0) + 1 for m in pc.models] + [1] * len(pc.pools)
                        + [int(view.hold[x]) for x in pc.tenants], dtype=np.int64)  # fmt: skip
