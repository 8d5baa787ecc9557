"""The load shaper: moves the offered load along the pattern, like a Locust LoadTestShape.

Every `shape_tick_s` the level is read from the pattern: closed loop, it becomes
the number of running users (new users start spread over the tick instead of all
at once, as Locust's spawn rate would); open loop, the Poisson rate for the tick.
"""

from __future__ import annotations

import simpy

from kisim.config import Scenario
from kisim.patterns import Pattern, make_pattern
from twin.dataplane import DataPlane


def build_pattern(scenario: Scenario, seed: int) -> Pattern:
    spec = scenario.traffic.pattern
    return make_pattern(spec.name, spec.params, seed)


def shaper(env: simpy.Environment, dp: DataPlane, scenario: Scenario, pattern: Pattern):  # type: ignore[no-untyped-def]
    tick = scenario.traffic.shape_tick_s
    closed = scenario.traffic.mode == "closed"
    while True:
        level = pattern.level(env.now)
        if closed:
            dp.set_users(int(round(level)), env.now, tick)
        else:
            dp.set_open_rate(level, env.now)
        yield env.timeout(tick)
