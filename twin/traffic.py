"""The load shaper: moves the offered load along the pattern, like a Locust LoadTestShape.

Every `shape_tick_s` the level is read from the pattern: closed loop, it becomes
the number of running users (new users start as `traffic.spawn_rate_users_s` says:
in groups at Locust's spawn rate, or, without one, spread over the tick); open loop,
the Poisson rate for the tick.
"""

from __future__ import annotations

import simpy

from kisim.core.config import Scenario
from kisim.core.patterns import Pattern, make_pattern
from twin.dataplane import DataPlane


def build_pattern(scenario: Scenario, seed: int) -> Pattern:
    spec = scenario.traffic.pattern
    return make_pattern(spec.name, spec.params, seed)


def shaper(env: simpy.Environment, dp: DataPlane, scenario: Scenario, pattern: Pattern):  # type: ignore[no-untyped-def]
    """Follow the pattern every tick; ticks where the (rounded) level would not change are
    skipped, which changes nothing but the number of SimPy events."""
    tick = scenario.traffic.shape_tick_s
    closed = scenario.traffic.mode == "closed"
    spawn = scenario.traffic.spawn_rate_users_s
    end = scenario.duration_s  # no look-ahead past it: a wake there with no change is a no-op
    k = 0
    while True:
        level = pattern.level(k * tick)
        if closed:
            level = int(round(level))
            dp.set_users(level, env.now, tick, spawn)
        else:
            dp.set_open_rate(level, env.now)
        step = 1
        while step < MAX_SKIP_TICKS and (k + step) * tick < end:
            nxt = pattern.level((k + step) * tick)
            if (int(round(nxt)) if closed else nxt) != level:
                break
            step += 1
        k += step
        yield env.timeout(k * tick - env.now)


MAX_SKIP_TICKS = 600
