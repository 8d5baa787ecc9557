"""A predictive autoscaler: forecast the arrival rate, provision ahead by the cold start.

Every ``PERIOD_S`` (15 s) it reads the request rate arriving at the Service (the Window's
``offered`` over its span - an ingress counter), updates an exponential-smoothing forecast of
it, and sets each pool to

    replicas = ceil(max forecast over [now, now + lead] x share / (UTIL x nominal capacity))

where ``lead`` = the pool's mean cold start (`agents.policies.params.startup_s`: scheduling,
container start, model load, first readiness probe) plus one period - a pod asked for now is
ready only then, so it must be asked for the load it will meet then - ``share`` the pool's
part of the traffic under the Service's routing (`kpa.pool_shares`), and the nominal capacity
that of `agents.policies.params.nominal_rps`. A scale-down waits: the count is the largest
asked for over the last ``DOWN_S`` (a stabilisation window, as the HPA's).

The forecast is Holt's linear method with a damped trend (Hyndman & Athanasopoulos,
*Forecasting: Principles and Practice*, 3rd ed., 8.2), additive Holt-Winters when a
``season_s`` is given and two seasons have been seen:

    level_t = a (y_t - s_{t-m}) + (1 - a)(level_{t-1} + phi b_{t-1})
    b_t     = beta (level_t - level_{t-1}) + (1 - beta) phi b_{t-1}
    s_t     = g (y_t - level_{t-1} - phi b_{t-1}) + (1 - g) s_{t-m}
    y_{t+h} = level_t + (phi + ... + phi^h) b_t + s_{t+h-m}

with a = 0.5, beta = 0.3, phi = 0.9, g = 0.3 fixed (not fitted per step). Written out in numpy
rather than statsmodels' ``ExponentialSmoothing``: statsmodels is not a dependency, and
refitting its optimiser every 15 s would cost more than the twin's step; the recursions are the
same. The forecast is never below the last observation's level when the trend is up (a rising
load is not under-provisioned by the damping).

``predictive[:UTIL[:DOWN_S[:SEASON_S]]]`` (defaults 0.7, 120 s, none).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.policies.base import Policy
from agents.policies.params import Field, help_of, nominal_rps, parse_params, startup_s
from kisim.core.backend import Action, PoolSetting
from kisim.core.config import Scenario, override
from kisim.core.routing import RouteTable
from kisim.core.window import Window

PERIOD_S = 15.0


@dataclass
class HoltWinters:
    """Additive damped-trend exponential smoothing, optionally seasonal (period `m` steps)."""

    alpha: float = 0.5
    beta: float = 0.3
    phi: float = 0.9
    gamma: float = 0.3
    m: int = 0
    level: float | None = None
    trend: float = 0.0
    history: list[float] = field(default_factory=list)
    season: list[float] = field(default_factory=list)

    def update(self, y: float) -> None:
        self.history.append(y)
        if self.level is None:
            self.level = y
            return
        seasonal = self.m > 0 and len(self.history) > 2 * self.m
        if self.m > 0 and len(self.history) == 2 * self.m:  # initial seasonal indices
            first = self.history[: self.m]
            mean = sum(first) / self.m
            self.season = [v - mean for v in first]
        s = self.season[-self.m] if seasonal else 0.0
        prev_level, prev_trend = self.level, self.trend
        self.level = self.alpha * (y - s) + (1 - self.alpha) * (prev_level + self.phi * prev_trend)
        self.trend = (self.beta * (self.level - prev_level)
                      + (1 - self.beta) * self.phi * prev_trend)  # fmt: skip
        if seasonal:
            self.season.append(self.gamma * (y - prev_level - self.phi * prev_trend)
                               + (1 - self.gamma) * s)  # fmt: skip

    def forecast(self, h: int) -> float:
        """y_{t+h} (h >= 1 steps ahead)."""
        assert self.level is not None
        damp = sum(self.phi**i for i in range(1, h + 1))
        y = self.level + damp * self.trend
        if self.m > 0 and len(self.season) >= self.m:
            y += self.season[-self.m + (h - 1) % self.m]
        return y


class Predictive(Policy):
    name = "predictive"
    fields = (
        Field("util", 0.7, 0.0, 2.0),
        Field("down_s", 120.0, 0.0, 3600.0, lo_incl=True),
        Field("season_s", 0.0, 0.0, 1e6, lo_incl=True),
    )
    arg_help = help_of(fields)
    action = "none"
    period_s = PERIOD_S

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        self.p = parse_params(self.name, arg, self.fields)

    def scenario(self, sc: Scenario) -> Scenario:
        return override(sc, f"policy {self.name}", **{"controller.name": "external"})

    def reset(self, scenario: Scenario) -> None:
        self.routes = RouteTable(scenario)
        m = round(self.p["season_s"] / PERIOD_S)
        self.model = HoltWinters(m=m)
        pools = [p for p in scenario.pool_names if scenario.pools[p].max_replicas > 0]
        self.bounds = {p: (max(1, scenario.pools[p].min_replicas), scenario.pools[p].max_replicas)
                       for p in pools}  # fmt: skip
        self.per_replica = {p: self.p["util"] * nominal_rps(scenario, p) for p in pools}
        self.lead_steps = {p: max(1, math.ceil((startup_s(scenario, p) + PERIOD_S) / PERIOD_S))
                           for p in pools}  # fmt: skip
        self.asked: dict[str, deque[tuple[float, int]]] = {p: deque() for p in pools}
        self.log: list[tuple[float, str, float, int]] = []  # (t, pool, forecast rps, replicas)

    def plan(self, rate: float, shares: dict[str, float], desired: dict[str, int], t: float
             ) -> dict[str, int]:  # fmt: skip
        """Replicas per pool for an observed `rate` now (updates the forecast)."""
        self.model.update(rate)
        out = {}
        for pool, (lo, hi) in self.bounds.items():
            if desired.get(pool, 0) == 0 and shares.get(pool, 0.0) == 0.0:
                out[pool] = 0  # a pool switched off stays off (placement is not ours)
                continue
            ahead = max(self.model.forecast(h) for h in range(1, self.lead_steps[pool] + 1))
            ahead = max(ahead, 0.0)
            need = math.ceil(ahead * shares.get(pool, 0.0) / self.per_replica[pool] - 1e-9)
            need = max(lo, min(hi, need))
            q = self.asked[pool]
            q.append((t, need))
            while q and q[0][0] <= t - self.p["down_s"] - 1e-9:
                q.popleft()
            out[pool] = max(n for _, n in q)  # scale down only after down_s
            self.log.append((t, pool, ahead, out[pool]))
        return out

    def tick(self, w: Window, t: float) -> Action | None:
        rate = w.offered / w.duration if w.duration > 0 else 0.0
        # the share a pool would get with its pods ready (desired, not ready: a pool whose
        # pods are starting must still be planned for)
        shares = self.routes.shares(w.placement, {p: r.desired for p, r in w.pools.items()})
        desired = {p: r.desired for p, r in w.pools.items()}
        plan = self.plan(rate, shares, desired, t)
        settings = {p: PoolSetting(replicas=n) for p, n in plan.items() if n != desired[p]}
        return Action(pools=settings) if settings else None

    def act(self, obs: np.ndarray, w: Window | None, t: float) -> Any:
        return 0


__all__ = ["HoltWinters", "Predictive"]
