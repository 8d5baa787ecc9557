"""Ray Serve's default autoscaler, per pool: ongoing requests per replica, with delays.

Mirrors ``ray-project/ray`` ``python/ray/serve/autoscaling_policy.py`` (the default
``replica_queue_length_autoscaling_policy`` wrapped by ``_apply_autoscaling_config``; older
releases had the same arithmetic in ``_calculate_desired_num_replicas`` plus the decision
counters in the policy itself):

    desired   = total ongoing requests / target_ongoing_requests          (a float)
    delta     = desired - running replicas
    scaled    = ceil(running + factor x delta)    factor = upscaling_factor if delta > 0
                                                           else downscaling_factor
                (stuck going down: ceil(desired) < running and scaled == running -> -1)
    bounded   = clamp(scaled, min_replicas, max_replicas)
    decision counter (``_apply_delay_logic``), against the current *target* replicas:
      bounded > target: counter = max(counter, 0) + 1; act when counter > upscale_delay_s / tick
      bounded < target: counter = min(counter, 0) - 1; act when counter < -downscale_delay_s / tick
      equal: counter = 0                 (acting resets the counter to 0)
    no running replica: the cold-start path returns max(ceil(upscaling_factor), target)
    when requests are waiting, else target.

``ray[:TARGET[:UP_DELAY_S[:DOWN_DELAY_S[:UP_FACTOR[:DOWN_FACTOR]]]]]``; Ray's documented
defaults are the untuned variant: ``target_ongoing_requests`` 2, ``upscale_delay_s`` 30,
``downscale_delay_s`` 600, factors 1, ``look_back_period_s`` 30.

Where kisim differs, and why: Ray's controller loop runs every 0.1 s
(``CONTROL_LOOP_INTERVAL_S``); here it ticks every 2 s (as the KPA: an inner controller of the
env), and the delays count 2 s decisions (``int(delay / 2)``), the same wall time. Total
ongoing requests (queued + executing, what replicas and handles report) is averaged over the
look-back period; each 2 s sample is Little's law on the tick's Window (`kpa.concurrency`) split
between the pools by the Service's routing (`kpa.pool_shares`), since each pool is its own
deployment. Every pool keeps at least one replica (``min_replicas`` 1).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.policies.base import Policy
from agents.policies.kpa import concurrency, pool_shares
from agents.policies.params import Field, help_of, parse_params
from kisim.core.backend import Action, PoolSetting
from kisim.core.config import Scenario, override
from kisim.core.routing import RouteTable
from kisim.core.window import Window

TICK_S = 2.0


def apply_scaling_factors(desired: float, current: int, up: float, down: float) -> int:
    """``_apply_scaling_factors``."""
    delta = desired - current
    f = up if delta > 0 else down
    scaled = math.ceil(current + f * delta)
    if math.ceil(desired) < current and scaled == current:
        scaled -= 1
    return scaled


@dataclass
class PoolRay:
    """One deployment's autoscaling state (``policy_state``'s decision counter)."""

    target: float
    up_delay_s: float
    down_delay_s: float
    up_factor: float
    down_factor: float
    min_replicas: int
    max_replicas: int
    look_back_n: int
    tick_s: float = TICK_S
    counter: int = 0
    samples: deque = field(default_factory=deque)

    def decide(self, ongoing: float, running: int, target_replicas: int) -> int:
        s = self.samples
        s.append(ongoing)
        while len(s) > self.look_back_n:
            s.popleft()
        total = sum(s) / len(s)
        if running == 0:  # _get_cold_start_scale_up_replicas
            if total > 0:
                return max(math.ceil(1 * self.up_factor), target_replicas)
            return target_replicas
        desired = running * (total / (self.target * running))
        scaled = apply_scaling_factors(desired, running, self.up_factor, self.down_factor)
        bounded = max(self.min_replicas, min(self.max_replicas, scaled))
        decision = target_replicas
        if bounded > target_replicas:
            self.counter = max(self.counter, 0) + 1
            if self.counter > int(self.up_delay_s / self.tick_s):
                self.counter, decision = 0, bounded
        elif bounded < target_replicas:
            self.counter = min(self.counter, 0) - 1
            bounded = max(1, bounded)
            if self.counter < -int(self.down_delay_s / self.tick_s):
                self.counter, decision = 0, bounded
        else:
            self.counter = 0
        return decision


class RayServe(Policy):
    name = "ray"
    fields = (
        Field("target", 2.0, 0.0, 1e4),
        Field("up_delay_s", 30.0, 0.0, 3600.0, lo_incl=True),
        Field("down_delay_s", 600.0, 0.0, 3600.0, lo_incl=True),
        Field("up_factor", 1.0, 0.0, 10.0),
        Field("down_factor", 1.0, 0.0, 10.0),
    )
    arg_help = help_of(fields)
    action = "none"
    period_s = TICK_S
    look_back_s = 30.0

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg)
        self.p = parse_params(self.name, arg, self.fields)

    def scenario(self, sc: Scenario) -> Scenario:
        return override(sc, f"policy {self.name}", **{"controller.name": "external"})

    def reset(self, scenario: Scenario) -> None:
        self.routes = RouteTable(scenario)
        p = self.p
        self.pools = {
            pool: PoolRay(p["target"], p["up_delay_s"], p["down_delay_s"], p["up_factor"],
                          p["down_factor"], max(1, cfg.min_replicas), cfg.max_replicas,
                          max(1, round(self.look_back_s / TICK_S)))
            for pool, cfg in ((q, scenario.pools[q]) for q in scenario.pool_names)
            if cfg.max_replicas > 0
        }  # fmt: skip
        self.log: list[tuple[float, str, float, int]] = []  # (t, pool, ongoing, decision)

    def tick(self, w: Window, t: float) -> Action | None:
        c = concurrency(w)
        shares = pool_shares(self.routes, w)
        settings: dict[str, PoolSetting] = {}
        for pool, ray in self.pools.items():
            rec = w.pool(pool)
            want = ray.decide(c * shares.get(pool, 0.0), rec.ready, rec.desired)
            self.log.append((t, pool, c * shares.get(pool, 0.0), want))
            if want != rec.desired:
                settings[pool] = PoolSetting(replicas=want)
        return Action(pools=settings) if settings else None

    def act(self, obs: np.ndarray, w: Window | None, t: float) -> Any:
        return 0
